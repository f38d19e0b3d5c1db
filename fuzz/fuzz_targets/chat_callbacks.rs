//! Chat callbacks after authentication: Slack interactions and Webex webhook envelopes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = euphrosyne::chat::slack::parse_callback(body);
    let _ = euphrosyne::chat::webex::parse_callback(body);
});
