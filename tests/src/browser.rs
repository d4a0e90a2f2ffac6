//! The dashboard as people use it: the real `audit-trail serve` process on a free port
//! ([`Dashboard`]), plain HTTP requests to it ([`Http`]), and headless Chromium driven over
//! WebDriver by fantoccini through chromedriver ([`Browser`]).
//!
//! The browser API here is synchronous (each call runs on the browser's own single-threaded
//! runtime) so tests can mix browser steps with checks through the synchronous `postgres`
//! client, which must not run inside an async runtime.
//!
//! Chromium and chromedriver are the Debian packages (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `CHROMIUM` and `CHROMEDRIVER` override). Screenshots go to
//! `target/test-screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::cluster::free_port;
use crate::sidecar;
use crate::TestDb;

pub use crate::http::{Http, Reply};

/// Where tests leave their screenshots.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-screenshots")
}

/// `audit-trail serve` against a test database, over TCP to 127.0.0.1 so that sign-in goes
/// through SCRAM password authentication. Stopped on drop.
pub struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dashboard {
    pub fn start(db: &TestDb) -> Dashboard {
        Self::start_with(db, &[])
    }

    /// With extra `serve` arguments, e.g. `["--idle-timeout", "2s"]`.
    pub fn start_with(db: &TestDb, args: &[&str]) -> Dashboard {
        Self::start_on(db.cluster.port, &db.name, args)
    }

    /// Serving database `dbname` of the cluster on `port`.
    pub fn start_on(port: u16, dbname: &str, args: &[&str]) -> Dashboard {
        let conninfo = format!("host=127.0.0.1 port={port} dbname={dbname} connect_timeout=10");
        Self::start_conninfo(&conninfo, args)
    }

    /// Serving the database `conninfo` names (without user or password).
    pub fn start_conninfo(conninfo: &str, args: &[&str]) -> Dashboard {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("serve.log");
        let stderr = std::fs::File::create(&log).expect("serve log");
        let mut child = sidecar::command()
            .args(["serve", "--db", conninfo, "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start audit-trail serve");
        // The one line on stdout names the address it listens on.
        let stdout = child.stdout.take().expect("serve stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("audit-trail serve did not start in 30 s");
            }
        };
        let Some(base) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|u| u.trim_end_matches('/').to_owned())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "audit-trail serve did not start: {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Dashboard {
            child,
            base,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium under chromedriver, with its own profile and download directory. The
/// browser session is ended and chromedriver's process group killed on drop.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    driver_url: String,
    session_id: Option<String>,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so that Chromium's processes go down with it.
            command.process_group(0);
        }
        let driver = command.spawn().unwrap_or_else(|e| {
            panic!("cannot run {chromedriver}: {e}; install chromium-driver (make setup)")
        });
        let driver_url = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = tempfile::tempdir().expect("downloads dir");
        let mut browser = Browser {
            rt,
            client: None,
            driver,
            driver_url,
            session_id: None,
            downloads,
            _profile: profile,
        };
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--disable-features=Translate,MediaRouter,OptimizationHints",
                    "--lang=en-US",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": browser.downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            },
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!("capabilities are an object"),
        };
        // chromedriver takes a moment to listen.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = browser.rt.block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&browser.driver_url),
            );
            match attempt {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot start Chromium through chromedriver: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        browser.session_id = browser.rt.block_on(client.session_id()).ok().flatten();
        browser.client = Some(client);
        browser
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("a browser session")
    }

    pub fn downloads(&self) -> &Path {
        self.downloads.path()
    }

    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.c().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .expect("current url")
            .to_string()
    }

    pub fn title(&self) -> String {
        self.rt.block_on(self.c().title()).expect("title")
    }

    /// The element `css` finds, waiting up to 10 s for it to appear.
    pub fn find(&self, css: &str) -> Element {
        self.rt
            .block_on(
                self.c()
                    .wait()
                    .at_most(Duration::from_secs(10))
                    .for_element(Locator::Css(css)),
            )
            .unwrap_or_else(|e| panic!("no element {css:?} on {}: {e}", self.url()))
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("find {css:?}: {e}"))
    }

    /// The text of the element `css` finds (retried while a page is being replaced).
    pub fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let element = self.find(css);
            match self.rt.block_on(element.text()) {
                Ok(text) => return text,
                Err(e) if Instant::now() > deadline => panic!("text of {css:?}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Waits (up to 10 s) until the element `css` finds has the text `expected`.
    pub fn wait_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.text(css);
            if got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css:?} reads {got:?}, not {expected:?}, at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn texts(&self, css: &str) -> Vec<String> {
        self.find_all(css)
            .into_iter()
            .map(|e| self.rt.block_on(e.text()).expect("element text"))
            .collect()
    }

    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css);
        self.rt.block_on(element.attr(name)).expect("attribute")
    }

    pub fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        self.find_all(css)
            .into_iter()
            .filter_map(|e| self.rt.block_on(e.attr(name)).expect("attribute"))
            .collect()
    }

    pub fn displayed(&self, css: &str) -> bool {
        let element = self.find(css);
        self.rt
            .block_on(element.is_displayed())
            .expect("is displayed")
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.rt
            .block_on(element.click())
            .unwrap_or_else(|e| panic!("click {css:?}: {e}"));
    }

    /// Replaces the text of an input.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.rt.block_on(element.clear()).expect("clear input");
        self.rt
            .block_on(element.send_keys(text))
            .unwrap_or_else(|e| panic!("type into {css:?}: {e}"));
    }

    pub fn select(&self, css: &str, value: &str) {
        let element = self.find(css);
        self.rt
            .block_on(element.select_by_value(value))
            .unwrap_or_else(|e| panic!("select {value:?} in {css:?}: {e}"));
    }

    /// Types keys into whatever has the focus (see [`fantoccini::key::Key`] for special keys).
    pub fn keys(&self, keys: &str) {
        let active = self
            .rt
            .block_on(self.c().active_element())
            .expect("active element");
        self.rt.block_on(active.send_keys(keys)).expect("send keys");
    }

    /// Runs a script in the page and returns its result.
    pub fn script(&self, js: &str) -> Value {
        self.rt
            .block_on(self.c().execute(js, vec![]))
            .unwrap_or_else(|e| panic!("script {js:?}: {e}"))
    }

    /// Waits (up to 10 s) until the page's URL satisfies `test` and the page has loaded.
    pub fn wait_url(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url();
            if test(&url)
                && self
                    .rt
                    .block_on(
                        self.c()
                            .execute("return document.readyState === 'complete';", vec![]),
                    )
                    .is_ok_and(|v| v == Value::Bool(true))
            {
                return url;
            }
            assert!(Instant::now() < deadline, "waited for {what}; at {url}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes the page's `index`th frame the one later calls look into.
    pub fn enter_frame(&self, index: u16) {
        self.rt
            .block_on(self.c().enter_frame(index))
            .unwrap_or_else(|e| panic!("enter frame {index}: {e}"));
    }

    /// Back to the page that holds the current frame.
    pub fn leave_frame(&self) {
        self.rt
            .block_on(self.c().enter_parent_frame())
            .unwrap_or_else(|e| panic!("leave the frame: {e}"));
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.c().set_window_size(width, height))
            .expect("set window size");
    }

    /// Saves a PNG of the viewport as `target/test-screenshots/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Waits (up to 30 s) for a finished download and returns its path.
    pub fn wait_download(&self) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done: Vec<PathBuf> = std::fs::read_dir(self.downloads())
                .expect("downloads dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x != "crdownload" && x != "tmp")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            let partial = std::fs::read_dir(self.downloads())
                .expect("downloads dir")
                .filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "crdownload"));
            if let [file] = done.as_slice() {
                if !partial {
                    return file.clone();
                }
            }
            assert!(done.len() <= 1, "more than one download: {done:?}");
            assert!(Instant::now() < deadline, "no download finished in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        } else if let Some(id) = &self.session_id {
            let _ = ureq::delete(format!("{}/session/{id}", self.driver_url)).call();
        }
        // SAFETY: kill(2) with a negative pid signals the process group chromedriver leads
        // (process_group(0) above); it has no memory-safety preconditions.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
