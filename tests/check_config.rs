//! `lacquer check-config`, the command an operator runs before a reload: every problem
//! printed as `file:line: key: message`, and a non-zero exit.

mod support;

use std::path::Path;

use support::*;

async fn check_config(file: &Path) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .arg("check-config")
        .arg(file)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_config_reports_bad_sites_with_lines() {
    within(30, async {
        let file = temp_path("sites.toml");
        std::fs::write(
            &file,
            r#"[[origin_group]]
name = "api"
servers = [{ address = "127.0.0.1" }]

[[site]]
name = "all"
origin_group = "api"

[[site]]
name = "api"
hosts = ["api.example.com:443"]
origin_group = "apis"

[[site]]
name = "later"
hosts = ["www.example.com"]
origin_group = "api"
cache = { force_ttl = "365d", default_ttl = "2s" }
"#,
        )
        .unwrap();
        let (ok, stdout, stderr) = check_config(&file).await;
        let _ = std::fs::remove_file(&file);
        assert!(!ok, "a bad file must fail: {stdout}{stderr}");
        let shown = file.display().to_string();
        let lines: Vec<&str> = stderr.lines().collect();
        for line in &lines {
            let rest = line
                .strip_prefix(&format!("{shown}:"))
                .unwrap_or_else(|| panic!("not `file:line: ...`: {line}"));
            let (number, _) = rest.split_once(": ").unwrap();
            assert!(number.parse::<usize>().is_ok(), "{line}");
        }
        for expected in [
            ":3: origin_group[0].servers[0].address: \"127.0.0.1\" is missing a port",
            ":11: site[1].hosts: \"api.example.com:443\" must not carry a port",
            ":12: site[1].origin_group: no [[origin_group]] is named \"apis\"",
            ":14: site[2] \"later\" can never match: site[0] \"all\" matches every request it would",
            ":18: site[2].cache.default_ttl: has no effect with force_ttl",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(expected)),
                "missing {expected:?} in:\n{stderr}"
            );
        }
        assert_eq!(lines.len(), 5, "{stderr}");
    })
    .await;
}

#[tokio::test]
async fn check_config_accepts_the_sites_example() {
    within(30, async {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sites-example.toml");
        let (ok, stdout, stderr) = check_config(&file).await;
        assert!(ok, "{stdout}{stderr}");
        assert!(
            stdout.trim_end().ends_with("sites-example.toml: ok"),
            "{stdout}"
        );
    })
    .await;
}
