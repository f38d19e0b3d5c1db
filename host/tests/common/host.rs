//! A real `euphrosyne serve` process for tests: packed recipes in a temp directory, a config
//! with three API tokens, the address read from its first line of output.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use euphrosyne::manifest::Manifest;

pub const VIEWER: &str = "viewer-secret-1";
pub const APPROVER: &str = "approver-secret-2";
pub const OPERATOR: &str = "operator-secret-3";

/// A running host; killed on drop.
pub struct Host {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// Pack bundled recipe `name` into `dir`, letting `edit` change its manifest (grants, config).
pub fn pack_into(dir: &std::path::Path, name: &str, edit: impl FnOnce(&mut Manifest)) {
    let (mut m, bytes) = super::bundled(name);
    edit(&mut m);
    let yaml = euphrosyne::pack::pack(&m, &bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.yaml")), yaml).unwrap();
}

impl Host {
    /// Start a host. `recipes(dir)` packs what it should load; `config` is extra TOML.
    pub fn start(recipes: impl FnOnce(&std::path::Path), config: &str, secrets: &[(&str, &str)]) -> Host {
        Self::start_with_env(recipes, config, secrets, &[])
    }

    /// [`Host::start`] with extra environment variables for the host process.
    pub fn start_with_env(
        recipes: impl FnOnce(&std::path::Path),
        config: &str,
        secrets: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let rdir = dir.path().join("recipes");
        std::fs::create_dir(&rdir).unwrap();
        recipes(&rdir);
        let sdir = dir.path().join("secrets");
        std::fs::create_dir(&sdir).unwrap();
        for (k, v) in secrets {
            std::fs::write(sdir.join(k), v).unwrap();
        }
        for (name, token) in [("viewer", VIEWER), ("approver", APPROVER), ("operator", OPERATOR)] {
            std::fs::write(dir.path().join(format!("{name}.token")), format!("{token}\n")).unwrap();
        }
        let d = dir.path().display();
        let config = config.replace("{dir}", &d.to_string());
        // 20 s unless the test's config says otherwise.
        let deadline = if config.contains("incident_deadline_ms") {
            ""
        } else {
            "incident_deadline_ms = 20000"
        };
        // A free port unless the test's config names one.
        let listen = if config.contains("listen =") {
            ""
        } else {
            "listen = \"127.0.0.1:0\""
        };
        let cfg = format!(
            r#"{listen}
recipes = "{d}/recipes"
secrets_dir = "{d}/secrets"
{deadline}
shutdown_grace_ms = 5000
{config}
[[tokens]]
name = "viewer-bot"
role = "viewer"
token = {{ file = "{d}/viewer.token" }}
[[tokens]]
name = "approver-bot"
role = "approver"
token = {{ file = "{d}/approver.token" }}
[[tokens]]
name = "operator-bot"
role = "operator"
token = {{ file = "{d}/operator.token" }}
"#
        );
        let cfg_path: PathBuf = dir.path().join("euphrosyne.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        // The host's log, kept for a failing wait to show (see `Host::log_tail`).
        let log = std::fs::File::create(dir.path().join("host.log")).unwrap();
        let mut child = Command::new(super::euphrosyne_bin())
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .env_remove("EUPHROSYNE_OPERATOR_TOKEN")
            .env("EUPHROSYNE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("serve printed nothing").unwrap();
        let url = first
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .trim()
            .to_string();
        // Keep draining stdout so the host never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Host {
            child,
            url,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.get(format!("{}{path}", self.url));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub fn post(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.post(format!("{}{path}", self.url));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// GET as the viewer and parse JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path, Some(VIEWER)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Post `examples/alerts/NAME.json` (see [`example_alert`]) to `/webhook`; it is accepted.
    pub async fn post_example(&self, name: &str) {
        let r = self
            .post("/webhook", None)
            .json(&example_alert(name))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{name}: {}", r.text().await.unwrap());
    }

    /// The incident opened for the example alert `alertname` (see [`example_alert`]) once
    /// analysed, as `/api/incidents/ID` shows it.
    pub async fn analysed_example(&self, alertname: &str) -> serde_json::Value {
        let list = self
            .wait_for(
                &format!("/api/incidents?state=analyzed&label=alertname%3D{alertname}"),
                |v| v["incidents"].as_array().is_some_and(|l| !l.is_empty()),
            )
            .await;
        let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
        self.json(&format!("/api/incidents/{id}")).await
    }

    /// Post `body` to `/webhook` (it is accepted); the id of the newest incident once one is
    /// listed.
    pub async fn open_incident(&self, body: &serde_json::Value) -> String {
        let r = self.post("/webhook", None).json(body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let list = self
            .wait_for("/api/incidents", |v| {
                v["incidents"].as_array().is_some_and(|l| !l.is_empty())
            })
            .await;
        list["incidents"][0]["id"].as_str().unwrap().to_string()
    }

    /// Poll `path` until `done` holds (20 s at most).
    pub async fn wait_for(&self, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let v = self.json(path).await;
            if done(&v) {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting on {path}: {v:#}\nthe host's log ends:\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last `n` lines the host logged (for a failing test's message).
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The single incident, once it is analysed.
    pub async fn analysed_incident(&self) -> serde_json::Value {
        let list = self
            .wait_for("/api/incidents?state=analyzed", |v| {
                v["incidents"].as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
        let id = list["incidents"][0]["id"].as_str().unwrap().to_string();
        self.json(&format!("/api/incidents/{id}")).await
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Alertmanager webhook body (version 4) with one alert.
pub fn alertmanager_body(
    group: &str,
    status: &str,
    labels: serde_json::Value,
    annotations: serde_json::Value,
    starts_at: &str,
    fingerprint: &str,
) -> serde_json::Value {
    serde_json::json!({
        "version": "4", "groupKey": group, "truncatedAlerts": 0, "status": status, "receiver": "euphrosyne",
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels, "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.test:9093",
        "alerts": [{"status": status, "labels": labels, "annotations": annotations, "startsAt": starts_at,
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.test/graph", "fingerprint": fingerprint}],
    })
}

/// `examples/alerts/NAME.json` as Alertmanager sends it, its alerts firing since a minute ago,
/// as its own group (kube-prometheus groups by namespace, and the shop examples would make one
/// incident of many alerts), so each gets its own incident.
pub fn example_alert(name: &str) -> serde_json::Value {
    let path = super::repo().join(format!("examples/alerts/{name}.json"));
    let mut body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    body["groupKey"] = serde_json::json!(format!("{{}}:{{alertname=\"{name}\"}}"));
    for a in body["alerts"].as_array_mut().unwrap() {
        a["startsAt"] = serde_json::json!(super::firing_since());
    }
    body
}

/// A host whose `http-probe` may reach a failing endpoint (503) and whose `open-ticket` may reach
/// a loopback stand-in for Jira's REST API (`POST /rest/api/2/issue` → 201 `{"key": "OPS-7"}`),
/// with the Jira secrets given; plus the bundled recipes in `more` and `secrets`.
pub struct World {
    pub host: Host,
    pub endpoint: super::HttpServer,
    pub jira: super::HttpServer,
}

impl World {
    pub fn start(config: &str, more: &[&str], secrets: &[(&str, &str)]) -> World {
        Self::start_with_env(config, more, secrets, &[])
    }

    /// [`World::start`] with extra environment variables for the host process.
    pub fn start_with_env(config: &str, more: &[&str], secrets: &[(&str, &str)], env: &[(&str, &str)]) -> World {
        let endpoint = super::HttpServer::start(503, "upstream down");
        let jira = super::HttpServer::start(
            201,
            r#"{"id":"10001","key":"OPS-7","self":"http://jira.test/rest/api/2/issue/10001"}"#,
        );
        let (ep, jp) = (endpoint.port, jira.port);
        let jira_url = format!("http://127.0.0.1:{jp}");
        let mut all: Vec<(&str, &str)> = vec![("jira-url", &jira_url), ("jira-user", "bot"), ("jira-token", "s3cret")];
        all.extend_from_slice(secrets);
        let host = Host::start_with_env(
            |dir| {
                pack_into(dir, "http-probe", |m| {
                    m.capabilities.http = vec![format!("127.0.0.1:{ep}")]
                });
                pack_into(dir, "open-ticket", |m| {
                    m.capabilities.http = vec![format!("127.0.0.1:{jp}")]
                });
                for name in more {
                    pack_into(dir, name, |_| {});
                }
            },
            config,
            &all,
            env,
        );
        World { host, endpoint, jira }
    }

    /// An Alertmanager body whose alert points http-probe at the failing endpoint.
    pub fn endpoint_alert(&self, fingerprint: &str) -> serde_json::Value {
        alertmanager_body(
            "{}:{alertname=\"EndpointDown\"}",
            "firing",
            serde_json::json!({"alertname": "EndpointDown", "service": "shop", "severity": "critical"}),
            serde_json::json!({"summary": "shop is down", "probe_url": format!("http://127.0.0.1:{}/health", self.endpoint.port)}),
            super::firing_since(),
            fingerprint,
        )
    }
}

/// The names of the recipes `/api/status` lists, in its order.
pub fn recipe_names(status: &serde_json::Value) -> Vec<String> {
    status["recipes"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Host {
    /// `POST /api/actions` with `body` and `token`: the status and the action id it answers.
    pub async fn approve(&self, token: &str, body: serde_json::Value) -> (reqwest::StatusCode, String) {
        let r = self.post("/api/actions", Some(token)).json(&body).send().await.unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap();
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no action id in {v}"))
            .to_string();
        (status, id)
    }

    /// `POST /api/actions` as the operator, as a dry run: the answer (asserted `200`).
    pub async fn dry_run(&self, incident: &str, action: &str, params: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({"incident": incident, "action": action, "params": params, "approver": "olga", "dry_run": true});
        let r = self
            .post("/api/actions", Some(OPERATOR))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{v:#}");
        v
    }
}
