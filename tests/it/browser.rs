//! A small WebDriver client (W3C protocol over HTTP) driving Debian's headless Chromium through
//! `chromedriver`, for testing the console as a person uses it. Nothing is downloaded: the
//! browser and driver are the system's (`.ci/run` installs the `chromium` and `chromium-driver`
//! packages when missing).
//!
//! Without them the browser tests say so and pass, unless `PROVOST_TEST_BROWSER=required`
//! (set by `.ci/run`), where their absence fails the run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

pub struct Element(String);

impl Browser {
    /// A headless Chromium, or `None` (with a message) when none is installed and the tests
    /// are not told to require one.
    pub async fn start() -> Option<Browser> {
        let driver_path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let (Some(driver_path), Some(chromium)) = (driver_path, chromium) else {
            assert!(
                std::env::var("PROVOST_TEST_BROWSER").as_deref() != Ok("required"),
                "PROVOST_TEST_BROWSER=required but chromium or chromedriver is missing: apt-get install chromium chromium-driver"
            );
            eprintln!("SKIPPED: no chromium/chromedriver here (apt-get install chromium chromium-driver); the console's browser tests did not run");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success());
            if ready == Some(true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = browser
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": ["--headless", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1280,1000"],
                    },
                }}}),
            )
            .await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let status = response.status();
        let body: Value = response.json().await.expect("WebDriver answers JSON");
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {body}"
        );
        body["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element `css` selects, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            let response = self
                .http
                .post(format!("{}/element", self.base))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .expect("chromedriver answers");
            if response.status().is_success() {
                let body: Value = response.json().await.unwrap();
                let id = body["value"][ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("not an element: {body}"));
                return Element(id.to_owned());
            }
            if started.elapsed() > Duration::from_secs(10) {
                panic!(
                    "no element `{css}` on {} after 10 s; the page:\n{}",
                    self.url().await,
                    self.call(reqwest::Method::GET, "/source", Value::Null)
                        .await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `css` selects anything now.
    pub async fn has(&self, css: &str) -> bool {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found.as_array().is_some_and(|a| !a.is_empty())
    }

    pub async fn click(&self, css: &str) {
        let Element(id) = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let Element(id) = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The visible text of the element `css` selects (waiting for it as [`Browser::find`]; an
    /// element replaced while it was read, as a page loads, is found again).
    pub async fn text(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let Element(id) = self.find(css).await;
            let response = self
                .http
                .get(format!("{}/element/{id}/text", self.base))
                .send()
                .await
                .expect("chromedriver answers");
            if response.status().is_success() {
                let body: Value = response.json().await.unwrap();
                return body["value"].as_str().unwrap_or_default().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the text of `{css}` could not be read in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the element `css` selects once it contains `needle` (a page after a form
    /// was sent may take a moment to replace the one before); panics after 10 s.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "`{css}` still says `{text}`, not `{needle}`, after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The form controls of the page that a screen reader could not name (no label, no
    /// `aria-label`, no text), and the pages' landmarks that are missing: what an accessible
    /// page has none of.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let script = r#"
            const problems = [];
            for (const el of document.querySelectorAll('input, select, textarea, button')) {
                if (el.type === 'hidden') continue;
                const named = (el.labels && el.labels.length > 0)
                    || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
                    || (el.tagName === 'BUTTON' && el.textContent.trim());
                if (!named) problems.push('unnamed control: ' + el.outerHTML.slice(0, 120));
            }
            for (const svg of document.querySelectorAll('svg')) {
                if (!svg.getAttribute('aria-label')) problems.push('svg without aria-label');
            }
            if (document.querySelectorAll('main').length !== 1) problems.push('not one main landmark');
            if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
            if (!document.documentElement.lang) problems.push('no lang on html');
            return problems;
        "#;
        let found = self
            .call(
                reqwest::Method::POST,
                "/execute/sync",
                json!({ "script": script, "args": [] }),
            )
            .await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    }

    /// An attribute of the element `css` selects.
    pub async fn attribute(&self, css: &str, name: &str) -> String {
        let Element(id) = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/attribute/{name}"),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The session cookie's value, to call the console from the test as this person.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self
            .call(reqwest::Method::GET, "/cookie", Value::Null)
            .await;
        cookies
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_owned))
    }

    pub async fn clear_cookies(&self) {
        self.call(reqwest::Method::DELETE, "/cookie", Value::Null)
            .await;
    }

    /// Saves a PNG of the window as `name`.png: under docs/src/images/console when
    /// `PROVOST_SCREENSHOTS=docs` (to refresh the manual's pictures), else under
    /// target/screenshots.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = if std::env::var("PROVOST_SCREENSHOTS").as_deref() == Ok("docs") {
            root.join("docs/src/images/console")
        } else {
            root.join("target/screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Browser {
    /// Ends the session (and its Chromium) and the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
