//! Authentication: API bearer tokens with roles, and the webhook's bearer or basic auth.
//! Tokens are compared in constant time and never logged.

use base64::Engine as _;
use http::HeaderMap;

use crate::access::Role;
use crate::config::ServeConfig;

/// An API token, resolved from its secret reference.
#[derive(Clone)]
pub struct Token {
    /// Holder.
    pub name: String,
    /// Role.
    pub role: Role,
    secret: String,
}

/// Resolved credentials.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
    webhook_bearer: Option<String>,
    webhook_basic: Option<(String, String)>,
}

/// Constant-time equality (`subtle`).
fn same(a: &str, b: &str) -> bool {
    crate::access::same(a.as_bytes(), b.as_bytes())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl Auth {
    /// Read every secret the configuration names. `EUPHROSYNE_OPERATOR_TOKEN`, when set, adds an
    /// operator token named `env-operator` (handy for a local `serve`).
    pub fn load(cfg: &ServeConfig) -> crate::Result<Self> {
        let mut tokens = Vec::new();
        for t in &cfg.tokens {
            tokens.push(Token {
                name: t.name.clone(),
                role: t.role,
                secret: t.token.read(&format!("token `{}`", t.name))?,
            });
        }
        if let Ok(t) = std::env::var("EUPHROSYNE_OPERATOR_TOKEN")
            && !t.is_empty()
        {
            tokens.push(Token {
                name: "env-operator".into(),
                role: Role::Operator,
                secret: t,
            });
        }
        let webhook_bearer = cfg
            .webhook_auth
            .bearer
            .as_ref()
            .map(|s| s.read("webhook_auth.bearer"))
            .transpose()?;
        let webhook_basic = match (&cfg.webhook_auth.basic_username, &cfg.webhook_auth.basic_password) {
            (Some(u), Some(p)) => Some((u.clone(), p.read("webhook_auth.basic_password")?)),
            (None, None) => None,
            _ => {
                return Err(crate::Error::Manifest {
                    path: "config".into(),
                    message: "webhook_auth: give both basic_username and basic_password".into(),
                });
            }
        };
        Ok(Auth {
            tokens,
            webhook_bearer,
            webhook_basic,
        })
    }

    /// Are any API tokens configured?
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The token presented, if valid.
    pub fn token(&self, headers: &HeaderMap) -> Option<&Token> {
        let presented = bearer(headers)?;
        self.tokens.iter().find(|t| same(&t.secret, presented))
    }

    /// The token held by `name`, if it is still configured.
    pub fn by_name(&self, name: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.name == name)
    }

    /// Check a presented token (a sign-in form's field).
    pub fn check(&self, presented: &str) -> Option<&Token> {
        let presented = presented.trim();
        self.tokens.iter().find(|t| same(&t.secret, presented))
    }

    /// The key the console signs its session cookies with: derived from every token's name and
    /// secret, so replicas with the same tokens accept each other's sessions, a restart keeps
    /// them, and changing any token signs everyone out. (Without tokens nobody can sign in; the
    /// key is then of no use and merely unique.)
    pub fn session_key(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"euphrosyne console session key v1\0");
        for t in &self.tokens {
            h.update((t.name.len() as u64).to_le_bytes());
            h.update(t.name.as_bytes());
            h.update((t.secret.len() as u64).to_le_bytes());
            h.update(t.secret.as_bytes());
        }
        if self.tokens.is_empty() {
            h.update(uuid::Uuid::new_v4().as_bytes());
        }
        h.finalize().into()
    }

    /// May this request call `/webhook`?
    pub fn webhook_allows(&self, headers: &HeaderMap) -> bool {
        if self.webhook_bearer.is_none() && self.webhook_basic.is_none() {
            return true;
        }
        if let (Some(expected), Some(got)) = (&self.webhook_bearer, bearer(headers))
            && same(expected, got)
        {
            return true;
        }
        if let Some((user, pass)) = &self.webhook_basic {
            let basic = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "));
            if let Some(decoded) = basic.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                && let Ok(text) = String::from_utf8(decoded)
                && let Some((u, p)) = text.split_once(':')
            {
                return same(u, user) && same(p, pass);
            }
        }
        false
    }

    /// Credentials for unit tests: `(holder, role, secret)`.
    #[cfg(test)]
    pub fn for_tests(tokens: &[(&str, Role, &str)]) -> Auth {
        Auth {
            tokens: tokens
                .iter()
                .map(|(name, role, secret)| Token {
                    name: name.to_string(),
                    role: *role,
                    secret: secret.to_string(),
                })
                .collect(),
            ..Auth::default()
        }
    }
}
