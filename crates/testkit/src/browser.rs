//! Headless Chromium driven through WebDriver, for tests of the pages:
//! ChromeDriver runs as a child process on a free loopback port (killed on
//! drop), Chromium without a sandbox at 1280×800. Every wait is bounded.
//!
//! `SFSTREAM_CHROMEDRIVER` and `SFSTREAM_CHROMIUM` override the binaries
//! (default `chromedriver` on the `PATH` and `/usr/bin/chromium`; Debian's
//! `chromium-driver` and `chromium`, which `scripts/test-deps.sh` installs).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub use fantoccini::{Client, Locator, elements::Element};
use tokio::process::{Child, Command};

/// The desktop window size.
pub const DESKTOP: (u32, u32) = (1280, 800);
/// A phone-sized window.
pub const PHONE: (u32, u32) = (390, 844);

/// How long ChromeDriver and Chromium get to start.
const START: Duration = Duration::from_secs(30);

/// A browser session; ChromeDriver is killed when it drops.
pub struct Browser {
    client: Client,
    _driver: Child,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Browser")
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium at [`DESKTOP`] size.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver =
            std::env::var("SFSTREAM_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{driver} runs (scripts/test-deps.sh installs chromium-driver): {e}")
            });
        let deadline = tokio::time::Instant::now() + START;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen within {START:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            ],
        });
        let binary =
            std::env::var("SFSTREAM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if Path::new(&binary).exists() {
            options["binary"] = binary.into();
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let session = tokio::time::timeout(
            START,
            fantoccini::ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await;
        let Ok(session) = session else {
            panic!("Chromium did not start within {START:?}");
        };
        let client = session.expect("a WebDriver session");
        let browser = Self {
            client,
            _driver: child,
        };
        browser.resize(DESKTOP).await;
        browser
    }

    /// The WebDriver client, for anything the helpers below do not do.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Waits at most `timeout` for an element matching the CSS selector.
    pub async fn find(&self, css: &str, timeout: Duration) -> Element {
        self.client
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {timeout:?}: {e}"))
    }

    /// Waits at most `timeout` until the text of the first element matching
    /// `css` contains `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} did not show {needle:?} within {timeout:?}; it showed {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits at most `timeout` until the attribute `name` of the first
    /// element matching `css` equals `value`.
    pub async fn wait_for_attr(&self, css: &str, name: &str, value: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(found) = element.attr(name).await
            {
                if found.as_deref() == Some(value) {
                    return;
                }
                last = found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} [{name}] was not {value:?} within {timeout:?}; it was {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resizes the window so that its viewport is `width`×`height` (as
    /// near as the browser allows).
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resizing the window");
        // The window includes the browser's own frame: grow it by that much.
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .expect("measuring the viewport");
        let size = |i: usize| u32::try_from(inner[i].as_u64().unwrap_or(0)).unwrap_or(0);
        let (inner_width, inner_height) = (size(0), size(1));
        if (inner_width, inner_height) != (width, height) && inner_width > 0 && inner_height > 0 {
            self.client
                .set_window_size(
                    width + width.saturating_sub(inner_width),
                    height + height.saturating_sub(inner_height),
                )
                .await
                .expect("resizing the window");
        }
    }

    /// The page's width as laid out, and the width of the viewport: a page
    /// usable at this size does not scroll sideways.
    pub async fn widths(&self) -> (u64, u64) {
        let value = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("measuring the page");
        let width = |i: usize| value[i].as_u64().unwrap_or(0);
        (width(0), width(1))
    }

    /// A PNG of the window; also written to `name` in the directory
    /// `SFSTREAM_SCREENSHOTS` names, when set (how the README's images are
    /// made).
    pub async fn screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = screenshot_dir() {
            std::fs::create_dir_all(&dir).expect("the screenshot directory");
            let path = dir.join(name);
            std::fs::write(&path, &png).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        }
        png
    }

    /// Ends the session (Chromium exits; ChromeDriver is killed on drop).
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.close()).await;
    }
}

/// Where screenshots go, when asked for.
pub fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("SFSTREAM_SCREENSHOTS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}
