//! `cairn quickstart --no-wait` on a fresh home: the life cycle on the wine data, every stage
//! printed, drift detected, lineage printed; a second run adds a version to the same model.
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
fn quickstart_runs_the_life_cycle_on_real_data() {
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let first = quickstart(home.path());
    let took = started.elapsed();
    // Every stage says it is done, in order.
    let mut at = 0;
    for stage in [
        "1. Versioned the red wine quality data (1599 rows, from linfa-datasets) as wine-quality@1",
        "2. Validated it: 7 of 7 expectations met",
        "3. Trained the baseline, a logistic regression and boosted trees",
        "4. Gated models:/quickstart-wine/1",
        "5. Promoted it: Moved @champion to models:/quickstart-wine/1 (gate passed)",
        "6. Served it over the Open Inference Protocol",
        "7. Its lineage",
        "8. Monitoring",
        "Done in ",
    ] {
        let found = first[at..]
            .find(stage)
            .unwrap_or_else(|| panic!("no {stage:?} after the previous stage in:\n{first}"));
        at += found + stage.len();
    }
    // Three runs compared with the baseline; the best registered and gated on three checks.
    for model in ["baseline ", "linear ", "gbdt "] {
        assert!(first.lines().any(|l| l.starts_with(model)), "{first}");
    }
    assert!(first.contains("Registered "), "{first}");
    assert!(first.contains("passed all 3 requirements"), "{first}");
    // Five served rows, each with a grade from 3 to 8.
    let grades: Vec<i64> = first
        .lines()
        .filter_map(|l| l.split("predicted grade ").nth(1))
        .map(|g| g.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(grades.len(), 5, "{first}");
    assert!(grades.iter().all(|g| (3..=8).contains(g)), "{first}");
    // The lineage reaches the data's digest.
    let digest = first
        .lines()
        .find_map(|l| l.split("wine-quality@1 (blake3 ").nth(1))
        .map(|rest| rest[..64].to_string())
        .unwrap_or_else(|| panic!("no dataset version in {first}"));
    let lineage_line = format!("dataset version wine-quality@1  blake3 {digest}");
    assert!(first.contains(&lineage_line), "{first}");
    assert!(home.path().join("quickstart/data.cairn").is_file());
    // Traffic like the training data: no drift; shifted: drift on the shifted features, the
    // alert fires and the gauge says so.
    assert!(
        first.contains(
            "the test rows as traffic: 325 predictions, drifted features: none; dataset drift: no"
        ),
        "{first}"
    );
    assert!(
        first.contains("shifted: 645 predictions, drifted features: fixed acidity, volatile acidity, citric acid, pH, sulphates, alcohol; dataset drift: YES"),
        "{first}"
    );
    assert!(first.contains("alert quickstart-drift FIRING"), "{first}");
    assert!(
        first.contains(r#"cairn_drift_share{model="quickstart-wine",version="1"} 0.545"#),
        "{first}"
    );
    // The issue's budget is 60 s for a release build on 2 cores; this is a debug build.
    assert!(took.as_secs() < 300, "took {took:?}");

    let second = quickstart(home.path());
    // Same bytes: the same dataset version, no new one; a new model version.
    assert!(second.contains(&lineage_line), "{second}");
    assert!(second.contains("as models:/quickstart-wine/2"), "{second}");
    assert!(
        second.contains("Moved @champion to models:/quickstart-wine/2"),
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
        .find_map(|l| l.split("Web UI: ").nth(1))
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
        runs.contains("metrics.test_accuracy"),
        "metric columns chosen by default"
    );
    let digest = printed
        .lines()
        .find_map(|l| l.split("wine-quality@1 (blake3 ").nth(1))
        .map(|rest| rest[..64].to_string())
        .unwrap();
    let (status, version) = get("/models/quickstart-wine/versions/1");
    assert_eq!(status, 200);
    assert!(
        version.contains(&digest),
        "the lineage reaches the data digest"
    );
    let (status, monitoring) = get("/monitoring/quickstart-wine/1");
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
    // The gate the quickstart ran and the promotion that followed it.
    assert!(version.contains("Gate passed"), "{version}");
    for requirement in ["metric test_accuracy vs", "p99 latency", "model file size"] {
        assert!(version.contains(requirement), "{requirement}: {version}");
    }
    assert!(
        version.contains("Promoted to <span class=\"tag alias\">@champion</span>"),
        "{version}"
    );
    assert!(
        version.contains("id=\"loaded\"><span class=\"status finished\">Loaded"),
        "the served version shows as loaded"
    );
    let (status, playground) = get("/models/quickstart-wine/versions/1/playground");
    assert_eq!(status, 200);
    assert!(
        playground.contains("id=\"prefilled\""),
        "prefilled from the training reference"
    );
    let _ = child.kill();
    let _ = child.wait();
}
