//! Alertmanager label matchers (`=`, `!=`, `=~`, `!~`): which alerts a debugging recipe handles.
//!
//! Syntax as in Alertmanager's routes and silences: `alertname="KubePodCrashLooping"`,
//! `severity!=info`, `alertname=~"KubePod.*"`; regexes are fully anchored, values may be quoted
//! (with `\"` and `\\` escapes) or bare. A label that is absent has the value `""`.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use crate::Error;

/// The operator of a matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

/// One matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: Op,
    /// The value or pattern as written.
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Parse one matcher.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::Matcher {
            matcher: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        let op_at = t
            .find(['=', '!'])
            .ok_or_else(|| err("expected an operator: =, !=, =~ or !~"))?;
        let name = t[..op_at].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err("the label name must be [a-zA-Z0-9_]+"));
        }
        let rest = &t[op_at..];
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (Op::Re, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (Op::NotRe, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (Op::Ne, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (Op::Eq, r)
        } else {
            return Err(err("expected an operator: =, !=, =~ or !~"));
        };
        let value = unquote(rest.trim()).ok_or_else(|| err("unterminated or badly escaped quoted value"))?;
        let regex = match op {
            Op::Re | Op::NotRe => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| err(&format!("bad regex: {e}")))?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    /// Does the label set satisfy this matcher?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (self.op, &self.regex) {
            (Op::Eq, _) => v == self.value,
            (Op::Ne, _) => v != self.value,
            (Op::Re, Some(r)) => r.is_match(v),
            (Op::NotRe, Some(r)) => !r.is_match(v),
            _ => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Some(v.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                c @ ('"' | '\\') => out.push(c),
                c => {
                    out.push('\\');
                    out.push(c)
                }
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A set of matchers that must all hold.
#[derive(Debug, Clone, Default)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parse every matcher; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, Error> {
        texts
            .iter()
            .map(|t| Matcher::parse(t.as_ref()))
            .collect::<Result<_, _>>()
            .map(Matchers)
    }

    /// All matchers hold (an empty set selects nothing: a debugger must say what it handles).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.0.is_empty() && self.0.iter().all(|m| m.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn alertmanager_semantics() {
        let l = labels(&[("alertname", "KubePodCrashLooping"), ("severity", "critical")]);
        let m = |s: &str| Matcher::parse(s).unwrap().matches(&l);
        assert!(m(r#"alertname=~"KubePodCrashLooping|KubePodNotReady""#));
        assert!(!m(r#"alertname=~"KubePod""#), "regexes are anchored");
        assert!(m("severity=critical"));
        assert!(m(r#"severity!="info""#));
        assert!(m(r#"team="""#), "an absent label is empty");
        assert!(m(r#"team!~".+""#));
        assert!(!m(r#"alertname!~"Kube.*""#));
        assert!(Matcher::parse(r#"a="x\"y""#).unwrap().value == "x\"y");
    }

    #[test]
    fn rejects_bad_matchers() {
        for bad in [
            "alertname",
            r#"alertname=~"(""#,
            r#"alert name="x""#,
            r#"a="unterminated"#,
            "=x",
        ] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
        assert!(!Matchers::default().matches(&labels(&[])));
    }
}
