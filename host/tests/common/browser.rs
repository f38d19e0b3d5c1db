//! Debian's chromium, headless, driven through its chromedriver (W3C WebDriver) with
//! fantoccini. Each [`Browser`] has its own chromedriver, port and profile; dropping it kills
//! the driver and the browsers it started (their own process group).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// A headless chromium.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver on a free loopback port and open a session in a fresh profile.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian: apt-get install chromium chromium-driver; scripts/test installs them)");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        super::until("chromedriver answers", Duration::from_secs(30), || {
            let status = status.clone();
            async move {
                reqwest::get(&status)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Open `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element `css` selects, waiting up to 20 s for it to appear.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let source = self.client.source().await.unwrap_or_default();
                panic!("no `{css}` within 20 s ({e}) on {url}:\n{source}")
            }
        }
    }

    /// How many elements `css` selects now.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Run `script` in the page; its value.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Sign in at `base` with `token` (the sign-in form, as a person would).
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/sign-in")).await;
        self.wait("#token").await.send_keys(token).await.unwrap();
        self.wait("form.sign-in button").await.click().await.unwrap();
        self.wait("table.incidents").await;
    }

    /// Sign out (the header's button).
    pub async fn sign_out(&self) {
        self.wait("header form.inline button").await.click().await.unwrap();
        self.wait("#token").await;
    }

    /// Save a PNG of the window to `$CONSOLE_SCREENSHOTS/NAME.png` when that is set.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    /// End the session, then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver and every chromium it started share its process group.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
