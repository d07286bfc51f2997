//! The `--report` HTML pages of `compile`, `bench` and `eval`, rendered by a real headless
//! browser (Debian's `chromium`): each page loads from a file with network fetches forbidden (its
//! Content-Security-Policy allows nothing external, and the file names nothing external), every
//! plot is drawn with its data (the page's own check, read back from the rendered DOM), and the
//! console stays empty. A page broken on purpose is reported broken, so the check is not vacuous.
//!
//! Without a browser the test says so and passes, unless `SPARQ_REQUIRE_BROWSER=1` (`.ci/run`
//! installs chromium and sets it). `SPARQ_BROWSER` names another Chromium-like binary.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sparq(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_sparq")).args(args).output().expect("run sparq");
    assert!(
        out.status.success(),
        "sparq {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn browser() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("SPARQ_BROWSER") {
        return Some(PathBuf::from(b));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// The DOM after load and the console lines of `page`, rendered headless (killed after 90 s).
fn render(browser: &Path, page: &Path, profile: &Path) -> (String, Vec<String>) {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the browser");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the browser did not finish rendering {url} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap();
    let console = err_reader.join().unwrap().lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    (dom, console)
}

/// The page names nothing outside itself: no script, style sheet, image or font to fetch.
fn check_self_contained(html: &str, what: &str) {
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"), "{what}: no CSP");
    for bad in ["<link", " src=", "@import", "url("] {
        assert!(!html.contains(bad), "{what}: names an external resource ({bad})");
    }
    // Namespaces (`xmlns="http://www.w3.org/2000/svg"`) are names, not fetches.
    let stripped = html.replace("http://www.w3.org/", "");
    assert!(!stripped.contains("http://") && !stripped.contains("https://"), "{what}: names a URL");
}

/// Renders `page` and checks it: `plots` plots drawn, nothing in the console.
fn check_page(browser: &Path, page: &Path, plots: usize, dir: &Path) {
    let html = std::fs::read_to_string(page).unwrap();
    let what = page.file_name().unwrap().to_string_lossy().into_owned();
    check_self_contained(&html, &what);
    assert_eq!(html.matches("<figure class=\"plot\"").count(), plots, "{what}: plots in the file");
    let (dom, console) = render(browser, page, &dir.join(format!("profile-{what}")));
    let want = format!("data-check=\"ok: {plots} plots\"");
    let got = dom.split("data-check=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("(no check ran)");
    assert!(dom.contains(&want), "{what}: the page's check says '{got}'");
    assert!(console.is_empty(), "{what}: console output: {console:?}");
    println!("{what}: {got}, console empty");
    // Broken on purpose: a plot claiming far more points than it draws is reported.
    let broken = dir.join(format!("broken-{what}"));
    std::fs::write(&broken, html.replacen("data-points=\"", "data-points=\"100000", 1)).unwrap();
    let (dom, _) = render(browser, &broken, &dir.join(format!("profile-broken-{what}")));
    assert!(dom.contains("data-check=\"failed: plot 0"), "{what}: a broken plot was not reported");
}

#[test]
fn reports_render_in_a_headless_browser_with_every_plot() {
    let Some(browser) = browser() else {
        if std::env::var_os("SPARQ_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!("SPARQ_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)");
        }
        eprintln!("skipped: no chromium on PATH (set SPARQ_REQUIRE_BROWSER=1 to make this a failure)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("sparq-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // A model that plain int8 (nearest rounding) does not fully agree with, so that the
    // precision search runs and the compile report has its candidates plot.
    let m = common::precision_search_model();
    let (onnx, calib, model) = (dir.join("wide.onnx"), dir.join("calib.npy"), dir.join("wide.sparq"));
    std::fs::write(&onnx, &m.onnx).unwrap();
    let samples = common::samples(&m.input_shape, 48, 13);
    let mut shape = m.input_shape.clone();
    shape[0] = samples.len();
    sparq_compiler::data::write_npy(&calib, &shape, &samples.concat()).unwrap();
    let (compile, bench, eval) = (dir.join("compile.html"), dir.join("bench.html"), dir.join("eval.html"));
    sparq(&[
        "compile",
        &s(&onnx),
        "--calib",
        &s(&calib),
        "--weight-rounding",
        "nearest",
        "--min-agreement",
        "0.99",
        "-o",
        &s(&model),
        "--report",
        &s(&compile),
    ]);
    sparq(&["bench", &s(&model), "--iters", "30", "--warmup", "2", "--report", &s(&bench)]);
    sparq(&["eval", &s(&model), "--data", &s(&calib), "--reference", &s(&onnx), "--report", &s(&eval)]);
    // compile: agreement, search candidates, latency histogram, per-layer latency, SQNR, bytes.
    check_page(&browser, &compile, 6, &dir);
    // bench: latency histogram, per-layer latency, bytes.
    check_page(&browser, &bench, 3, &dir);
    // eval: agreement bars, per-sample SQNR, bytes.
    check_page(&browser, &eval, 3, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
