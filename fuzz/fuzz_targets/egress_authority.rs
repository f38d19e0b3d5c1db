//! The egress authority parser and the grant parser: whatever parses matches consistently, and
//! a wildcard grant never accepts a non-public IP literal as if it were a name.
#![no_main]

use euphrosyne::capability::http::addresses::restriction;
use euphrosyne::capability::http::{Host, HostPattern, Scheme, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (grant, authority) = text.split_once('\n').unwrap_or(("*.example.com", text));
    let Ok(target) = Target::parse_authority(Scheme::Https, authority) else {
        return;
    };
    if let Host::Ip(ip) = target.host {
        let _ = restriction(ip);
    }
    if let Host::Name(name) = &target.host {
        assert!(name.parse::<std::net::IpAddr>().is_err(), "{name} parsed as a name");
    }
    if let Ok(p) = HostPattern::parse(grant)
        && p.matches(&target)
        && !p.names_exactly()
    {
        assert!(matches!(target.host, Host::Name(_)), "a wildcard matched an IP literal");
    }
});
