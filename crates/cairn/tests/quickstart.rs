//! `cairn quickstart --no-wait` on a fresh home: trains and logs runs, registers the best
//! model, serves it and prints its answers; a second run adds a version to the same model.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn quickstart(home: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["quickstart", "--no-wait", "--port", "0"])
        .env("CAIRN_HOME", home)
        .env("CAIRN_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickstart_trains_registers_and_serves() {
    let home = tempfile::tempdir().unwrap();
    let first = quickstart(home.path());
    assert!(first.contains("with 3 runs"), "{first}");
    assert!(
        first.contains("Validated it before training: 16 of 16 expectations met"),
        "{first}"
    );
    assert!(
        first.contains("Registered 'quickstart-logreg' version 1 (alias 'champion')"),
        "{first}"
    );
    // Four served rows, each with a probability in [0, 1].
    let probabilities: Vec<f64> = first
        .lines()
        .filter_map(|l| l.split("P(y=1)=").nth(1))
        .map(|p| p.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(probabilities.len(), 4, "{first}");
    assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
    // The data was versioned before use, and the served model's lineage reaches its digest.
    let digest = first
        .lines()
        .find_map(|l| l.split("quickstart-data@1 (blake3 ").nth(1))
        .map(|rest| rest[..64].to_string())
        .unwrap_or_else(|| panic!("no dataset version in {first}"));
    let lineage_line = format!("dataset version quickstart-data@1  blake3 {digest}");
    assert!(first.contains(&lineage_line), "{first}");
    assert!(
        first.contains(&format!("input quickstart-data digest {}", &digest[..32])),
        "{first}"
    );
    assert!(home.path().join("quickstart/data.cairn").is_file());
    // Served traffic is monitored: like the training data, no drift; shifted, drift flagged
    // on the shifted features, the alert fires and the gauge says so.
    assert!(
        first.contains("traffic like the training data: 204 predictions, drifted features: none; dataset drift: no"),
        "{first}"
    );
    assert!(
        first.contains("plus traffic with x0, x1, x2 shifted: 404 predictions, drifted features: x0, x1, x2; dataset drift: YES"),
        "{first}"
    );
    assert!(first.contains("alert quickstart-drift FIRING"), "{first}");
    assert!(
        first.contains(r#"Prometheus (/metrics): cairn_drift_share{model="quickstart-logreg",version="1"} 0.75"#),
        "{first}"
    );
    let second = quickstart(home.path());
    // Same bytes: the same dataset version, no new one.
    assert!(second.contains(&lineage_line), "{second}");
    assert!(
        second.contains("Registered 'quickstart-logreg' version 2"),
        "{second}"
    );
}

/// The quickstart prints the web UI's address, and its pages show the quickstart's runs, the
/// model's lineage down to the data digest, the drift it detected and a prefilled playground.
#[test]
fn quickstart_pages_show_what_it_did() {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["quickstart", "--port", "0"])
        .env("CAIRN_HOME", home.path())
        .env("CAIRN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("the quickstart ended before serving:\n{printed}");
        };
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("Serving on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let get = |path: &str| -> (u16, String) {
        let mut resp = agent.get(&format!("{base}{path}")).call().unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    let experiments_url = printed
        .lines()
        .find_map(|l| l.strip_prefix("Web UI: "))
        .unwrap_or_else(|| panic!("no UI address printed:\n{printed}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let path = experiments_url.strip_prefix(&base).unwrap();
    let (status, runs) = get(path);
    assert_eq!(status, 200);
    assert_eq!(
        runs.matches("name=\"run\" value=").count(),
        3,
        "three runs listed"
    );
    assert!(
        runs.contains("metrics.val_loss"),
        "metric columns chosen by default"
    );
    let digest = printed
        .lines()
        .find_map(|l| l.split("quickstart-data@1 (blake3 ").nth(1))
        .map(|rest| rest[..64].to_string())
        .unwrap();
    let (status, version) = get("/models/quickstart-logreg/versions/1");
    assert_eq!(status, 200);
    assert!(
        version.contains(&digest),
        "the lineage reaches the data digest"
    );
    let (status, monitoring) = get("/monitoring/quickstart-logreg/1");
    assert_eq!(status, 200);
    assert!(monitoring.contains("Dataset drift"), "{monitoring}");
    // Drift, traffic and accuracy drawn over time, one point per window with data.
    for chart in ["drift-chart", "requests-chart", "labelled-chart"] {
        let at = monitoring
            .find(&format!("<svg class=\"chart small\" id=\"{chart}\""))
            .unwrap_or_else(|| panic!("no {chart} on the monitoring page"));
        let svg = &monitoring[at..at + monitoring[at..].find("</svg>").unwrap()];
        assert!(svg.contains("<circle"), "{chart} has no points: {svg}");
    }
    assert!(
        version.contains("id=\"loaded\"><span class=\"status finished\">Loaded"),
        "the served version shows as loaded"
    );
    let (status, playground) = get("/models/quickstart-logreg/versions/1/playground");
    assert_eq!(status, 200);
    assert!(
        playground.contains("id=\"prefilled\""),
        "prefilled from the training reference"
    );
    let _ = child.kill();
    let _ = child.wait();
}
