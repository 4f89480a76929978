//! The three checks of issue 4 for every client, the supply-chain rules check of issue 15, the
//! no-pipgate controls, and the table.
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use super::invoke::{resolve, Indexes, Route, Tool, Via};
use super::run::ClientError;
use super::{Availability, Installed, Kind, Survey};

/// Everything the checks need from a running scenario (see `world::World`).
pub struct Scenario<'a> {
    /// pipgate's proxy URL and the CA it mints leaves with.
    pub pipgate: (String, PathBuf),
    /// An unfiltered tunnel to the same origins and the CA that signed them: the control.
    pub control: (String, PathBuf),
    /// `https://private.test/simple/`.
    pub private_index: String,
    /// `https://pypi.org/simple/`.
    pub public_index: String,
    /// How many requests the external host (`evil.test`) has seen so far.
    pub evil_hits: &'a (dyn Fn() -> usize + Sync),
    /// Where each check's transcript is written.
    pub log_dir: PathBuf,
}

impl std::fmt::Debug for Scenario<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("pipgate", &self.pipgate)
            .field("control", &self.control)
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Passed; the text says what was seen (e.g. `1.0`).
    Pass(String),
    /// Failed, with the reason.
    Fail(String),
    /// Not run because the client is unavailable, with the reason.
    Skip(String),
    /// This row does not exercise this check.
    NotApplicable,
}

/// How a row's client is set up, beyond its tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Through pipgate, configured by the tool's environment variables.
    Env,
    /// Through pipgate, configured by pip.conf.
    PipConf,
    /// Through pipgate, no `--index-url`: pip 8/9's default `pypi.python.org`.
    DefaultIndex,
    /// Through the unfiltered tunnel: the confusion must succeed here.
    Control,
}

impl Setup {
    fn label(self, tool: Tool) -> &'static str {
        match (self, tool) {
            (Setup::Env, Tool::Pip) => "HTTPS_PROXY+PIP_CERT",
            (Setup::Env, Tool::PipCompile) => "HTTPS_PROXY+PIP_CERT",
            (Setup::Env, Tool::UvInstall | Tool::UvCompile) => "HTTPS_PROXY+SSL_CERT_FILE",
            (Setup::Env, Tool::PoetryLock) => "HTTPS_PROXY+REQUESTS_CA_BUNDLE",
            (Setup::PipConf, _) => "pip.conf proxy=/cert=",
            (Setup::DefaultIndex, _) => "default index (pypi.python.org)",
            (Setup::Control, _) => "CONTROL: no pipgate",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The client directory id.
    pub client: String,
    /// How it was driven (`pip install`, `uv pip compile`, ...).
    pub tool: String,
    /// The installed version, or `-` when unavailable.
    pub version: String,
    /// The interpreter (`3.6.15`), or the wanted line when unavailable.
    pub python: String,
    /// How the client reached the index.
    pub setup: String,
    /// Confusion blocked, public works, external links blocked, rules respected.
    pub cells: [Cell; 4],
}

struct Planned {
    row: Row,
    client: Option<Installed>,
    tool: Tool,
    setup: Setup,
}

/// Rows for every matrix entry, plus the pip.conf case, the default-index case and the
/// controls; unavailable clients get their SKIP/FAIL rows without running anything.
fn plan(found: &[(super::ClientSpec, Availability)]) -> Vec<Planned> {
    let mut rows = Vec::new();
    let ready: Vec<&Installed> = found
        .iter()
        .filter_map(|(_, a)| match a {
            Availability::Ready(c) => Some(c),
            _ => None,
        })
        .collect();
    for (spec, availability) in found {
        for &tool in spec.kind.tools() {
            let (client, version, python, cell) = match availability {
                Availability::Ready(c) => (
                    Some(c.clone()),
                    c.version_label(),
                    c.python.clone(),
                    Cell::NotApplicable,
                ),
                Availability::Skip(why) => (
                    None,
                    "-".into(),
                    spec.python.into(),
                    Cell::Skip(why.clone()),
                ),
                Availability::Broken(why) => (
                    None,
                    "-".into(),
                    spec.python.into(),
                    Cell::Fail(why.clone()),
                ),
            };
            rows.push(Planned {
                row: Row {
                    client: spec.id.into(),
                    tool: tool.to_string(),
                    version,
                    python,
                    setup: Setup::Env.label(tool).into(),
                    cells: [cell.clone(), cell.clone(), cell.clone(), cell],
                },
                client,
                tool,
                setup: Setup::Env,
            });
        }
    }
    // The extra cases go to the first ready client of a preference list, so a machine without
    // one interpreter still runs them on another.
    let pick = |ids: &[&str]| {
        ids.iter()
            .find_map(|id| ready.iter().find(|c| c.id == *id).copied())
    };
    let mut extra = |client: Option<&Installed>, tool: Tool, setup: Setup| {
        if let Some(c) = client {
            rows.push(Planned {
                row: Row {
                    client: c.id.clone(),
                    tool: tool.to_string(),
                    version: c.version_label(),
                    python: c.python.clone(),
                    setup: setup.label(tool).into(),
                    cells: [
                        Cell::NotApplicable,
                        Cell::NotApplicable,
                        Cell::NotApplicable,
                        Cell::NotApplicable,
                    ],
                },
                client: Some(c.clone()),
                tool,
                setup,
            });
        }
    };
    extra(
        pick(&["pip-latest-py3.11", "pip-latest-py3.13", "pip-25.3-py3.11"]),
        Tool::Pip,
        Setup::PipConf,
    );
    extra(
        pick(&["pip-9.0.3-py3.6", "pip-9.0.3-py2.7", "pip-8.1.2-py3.6"]),
        Tool::Pip,
        Setup::DefaultIndex,
    );
    let oldest_pip = ready.iter().find(|c| c.kind == Kind::Pip).copied();
    extra(oldest_pip, Tool::Pip, Setup::Control);
    extra(
        pick(&["pip-latest-py3.11", "pip-latest-py3.13"]),
        Tool::Pip,
        Setup::Control,
    );
    extra(pick(&["uv"]), Tool::UvInstall, Setup::Control);
    extra(pick(&["poetry"]), Tool::PoetryLock, Setup::Control);
    rows
}

/// Which checks a row runs: index into `Row::cells`.
fn checks_of(setup: Setup) -> &'static [usize] {
    match setup {
        Setup::Env | Setup::PipConf => &[0, 1, 2, 3],
        Setup::DefaultIndex => &[1, 3],
        Setup::Control => &[0, 3],
    }
}

/// Runs every planned check with `workers` clients at a time and returns the table rows.
pub fn run_matrix(survey: &Survey, scenario: &Scenario<'_>, workers: usize) -> Vec<Row> {
    let found = match survey {
        Survey::Missing(_) => return Vec::new(),
        Survey::Found(found) => found,
    };
    let planned = plan(found);
    let jobs: VecDeque<(usize, usize)> = planned
        .iter()
        .enumerate()
        .filter(|(_, p)| p.client.is_some())
        .flat_map(|(i, p)| checks_of(p.setup).iter().map(move |&c| (i, c)))
        .collect();
    let jobs = Mutex::new(jobs);
    let cells: Mutex<Vec<[Cell; 4]>> =
        Mutex::new(planned.iter().map(|p| p.row.cells.clone()).collect());
    // Check 3 reads the external host's access log before and after: only one at a time, so a
    // request is blamed on the client that made it.
    let extlinks = Mutex::new(());
    let _ = std::fs::create_dir_all(&scenario.log_dir);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let Some((i, check)) = jobs.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
                else {
                    break;
                };
                let p = &planned[i];
                let Some(client) = &p.client else { continue };
                let cell = if check == 2 {
                    let _one = extlinks.lock().unwrap_or_else(|e| e.into_inner());
                    run_check(client, p.tool, p.setup, check, scenario)
                } else {
                    run_check(client, p.tool, p.setup, check, scenario)
                };
                cells.lock().unwrap_or_else(|e| e.into_inner())[i][check] = cell;
            });
        }
    });
    let cells = cells.into_inner().unwrap_or_else(|e| e.into_inner());
    planned
        .into_iter()
        .zip(cells)
        .map(|(p, cells)| Row { cells, ..p.row })
        .collect()
}

fn run_check(
    client: &Installed,
    tool: Tool,
    setup: Setup,
    check: usize,
    sc: &Scenario<'_>,
) -> Cell {
    let (proxy, ca) = if setup == Setup::Control {
        &sc.control
    } else {
        &sc.pipgate
    };
    let route = Route {
        proxy_url: proxy.clone(),
        ca_pem: ca.clone(),
        via: if setup == Setup::PipConf {
            Via::PipConf
        } else {
            Via::Env
        },
    };
    let public = || Indexes {
        primary: (setup != Setup::DefaultIndex).then(|| sc.public_index.clone()),
        extra: None,
    };
    let (requirement, indexes, want): (&str, Indexes, &[(&str, &str)]) = match check {
        0 => (
            "acme-lib",
            Indexes {
                primary: Some(sc.private_index.clone()),
                extra: Some(sc.public_index.clone()),
            },
            // Without pipgate the public copy must win, or the check could not fail.
            if setup == Setup::Control {
                &[("acme-lib", "99.0")]
            } else {
                &[("acme-lib", "1.0")]
            },
        ),
        1 => ("pubpkg", public(), &[("pubpkg", "1.0"), ("pubdep", "1.0")]),
        2 => ("extlinks", public(), &[("extlinks", "1.0")]),
        // The cooldown withholds fresh 2.0 (an hour old) but not exemptpkg's; the deny list
        // withholds denyver 2.0 (by version) and denyhash 2.0 (by hash); the advisory feed
        // malver 2.0 (listed), malrange 2.0 (in a range) and malhash 2.0 (listed, with its
        // file's hash). Without pipgate every newest version wins, or the check could not fail.
        _ => (
            "rules-app",
            public(),
            if setup == Setup::Control {
                &[
                    ("rules-app", "1.0"),
                    ("fresh", "2.0"),
                    ("exemptpkg", "2.0"),
                    ("denyver", "2.0"),
                    ("denyhash", "2.0"),
                    ("malver", "2.0"),
                    ("malrange", "2.0"),
                    ("malhash", "2.0"),
                ]
            } else {
                &[
                    ("rules-app", "1.0"),
                    ("fresh", "1.0"),
                    ("exemptpkg", "2.0"),
                    ("denyver", "1.0"),
                    ("denyhash", "1.0"),
                    ("malver", "1.0"),
                    ("malrange", "1.0"),
                    ("malhash", "1.0"),
                ]
            },
        ),
    };
    let evil_before = (sc.evil_hits)();
    let result = resolve(tool, client, &route, &indexes, requirement);
    let evil_after = (sc.evil_hits)();
    let log = sc.log_dir.join(format!(
        "{}-{}-{:?}-check{}.log",
        client.id,
        tool.to_string().replace(' ', "-"),
        setup,
        check + 1
    ));
    let transcript = match &result {
        Ok(r) => r.transcript.clone(),
        Err(e) => format!("{e}\n{}", e.transcript()),
    };
    let _ = std::fs::write(&log, transcript);
    let seen = match result {
        // Without --index-url the pass only counts if pip really started at its old default.
        Ok(r) if setup == Setup::DefaultIndex && !r.transcript.contains("pypi.python.org") => {
            return Cell::Fail(format!(
                "pip never mentioned pypi.python.org (log: {})",
                log.display()
            ))
        }
        Ok(r) => r.versions,
        Err(e) => return Cell::Fail(failure(&e, &log)),
    };
    if check == 2 && evil_after != evil_before {
        return Cell::Fail(format!(
            "evil.test got {} request(s) (log: {})",
            evil_after - evil_before,
            log.display()
        ));
    }
    let wrong: Vec<String> = want
        .iter()
        .filter(|(name, version)| seen.get(*name).map(String::as_str) != Some(*version))
        .map(|(name, version)| {
            format!(
                "{name}: wanted {version}, got {}",
                seen.get(*name).map_or("nothing", String::as_str)
            )
        })
        .collect();
    if wrong.is_empty() {
        Cell::Pass(
            want.iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    } else {
        Cell::Fail(format!("{} (log: {})", wrong.join("; "), log.display()))
    }
}

fn failure(e: &ClientError, log: &std::path::Path) -> String {
    format!("{e} (log: {})", log.display())
}

const HEADERS: [&str; 9] = [
    "client",
    "tool",
    "version",
    "python",
    "setup",
    "1 confusion",
    "2 public",
    "3 extlinks",
    "4 rules",
];

/// The table, one line per row, with FAIL/SKIP reasons as numbered notes below it.
pub fn render_table(rows: &[Row]) -> String {
    let mut notes: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut lines: Vec<[String; 9]> = Vec::new();
    for r in rows {
        let mut cell = |c: &Cell, check: &str| match c {
            Cell::Pass(_) => "PASS".to_owned(),
            Cell::NotApplicable => "-".to_owned(),
            Cell::Fail(why) | Cell::Skip(why) => {
                let tag = if matches!(c, Cell::Fail(_)) {
                    "FAIL"
                } else {
                    "SKIP"
                };
                // A row skipped for one cause shows one note, not three.
                let key = format!("{} {} {tag} {why}", r.client, r.tool);
                let n = match keys.iter().position(|k| *k == key) {
                    Some(i) => i + 1,
                    None => {
                        keys.push(key);
                        // A skip concerns the client, a failure one check.
                        notes.push(if tag == "SKIP" {
                            format!("{} {}: {why}", r.client, r.tool)
                        } else {
                            format!("{} {} {check}: {why}", r.client, r.tool)
                        });
                        notes.len()
                    }
                };
                format!("{tag} [{n}]")
            }
        };
        let c0 = cell(&r.cells[0], "confusion");
        let c1 = cell(&r.cells[1], "public");
        let c2 = cell(&r.cells[2], "extlinks");
        let c3 = cell(&r.cells[3], "rules");
        lines.push([
            r.client.clone(),
            r.tool.clone(),
            r.version.clone(),
            r.python.clone(),
            r.setup.clone(),
            c0,
            c1,
            c2,
            c3,
        ]);
    }
    let mut widths = HEADERS.map(str::len);
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut emit = |cols: &[String]| {
        let line: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", line.join(" | "));
    };
    emit(&HEADERS.map(str::to_owned));
    emit(&widths.map(|w| "-".repeat(w)));
    for l in &lines {
        emit(l);
    }
    for (i, n) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {n}", i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{ClientSpec, MATRIX};

    fn ready(spec: &ClientSpec) -> Installed {
        Installed {
            id: spec.id.into(),
            kind: spec.kind,
            version: "1".into(),
            python: spec.python.into(),
            extra: Default::default(),
            root: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn plan_covers_every_tool_and_the_extra_cases() {
        let found: Vec<_> = MATRIX
            .iter()
            .map(|s| (*s, Availability::Ready(ready(s))))
            .collect();
        let planned = plan(&found);
        // 20 clients, uv twice, + pip.conf + default index + 4 controls.
        assert_eq!(planned.len(), 21 + 6);
        let setups = |s: Setup| planned.iter().filter(|p| p.setup == s).count();
        assert_eq!(setups(Setup::PipConf), 1);
        assert_eq!(setups(Setup::DefaultIndex), 1);
        assert_eq!(setups(Setup::Control), 4);
        let controls: Vec<&str> = planned
            .iter()
            .filter(|p| p.setup == Setup::Control)
            .map(|p| p.row.client.as_str())
            .collect();
        assert_eq!(
            controls,
            ["pip-8.1.2-py3.6", "pip-latest-py3.11", "uv", "poetry"]
        );
    }

    #[test]
    fn unavailable_clients_become_skip_or_fail_rows_without_extras() {
        let found: Vec<_> = MATRIX
            .iter()
            .map(|s| match s.python {
                "3.6" => (*s, Availability::Skip("no Python 3.6".into())),
                _ if s.id == "uv" => (*s, Availability::Broken("setup failed".into())),
                _ => (*s, Availability::Ready(ready(s))),
            })
            .collect();
        let planned = plan(&found);
        let row = |id: &str| planned.iter().find(|p| p.row.client == id).unwrap();
        assert!(
            matches!(&row("pip-8.1.2-py3.6").row.cells[0], Cell::Skip(r) if r == "no Python 3.6")
        );
        assert!(matches!(&row("uv").row.cells[2], Cell::Fail(r) if r == "setup failed"));
        // The default-index case falls back to the 2.7 pip 9; the oldest-pip control to 2.7's.
        let default = planned
            .iter()
            .find(|p| p.setup == Setup::DefaultIndex)
            .unwrap();
        assert_eq!(default.row.client, "pip-9.0.3-py2.7");
        assert!(!planned
            .iter()
            .any(|p| p.setup == Setup::Control && p.row.client == "uv"));
    }

    #[test]
    fn table_shows_reasons_as_notes() {
        let rows = vec![Row {
            client: "pip-9.0.3-py2.7".into(),
            tool: "pip install".into(),
            version: "-".into(),
            python: "2.7".into(),
            setup: "HTTPS_PROXY+PIP_CERT".into(),
            cells: [
                Cell::Skip("no Python 2.7".into()),
                Cell::Skip("no Python 2.7".into()),
                Cell::Fail("evil.test got 1 request(s)".into()),
                Cell::Skip("no Python 2.7".into()),
            ],
        }];
        let t = render_table(&rows);
        assert!(t.contains("| SKIP [1]    | SKIP [1] | FAIL [2]"), "{t}");
        assert!(
            t.contains("[1] pip-9.0.3-py2.7 pip install: no Python 2.7"),
            "{t}"
        );
        assert!(
            t.contains("[2] pip-9.0.3-py2.7 pip install extlinks: evil.test got 1"),
            "{t}"
        );
    }
}
