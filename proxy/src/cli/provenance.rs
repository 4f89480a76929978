//! `pipgate provenance show|accept NAME`: what is pinned for a project and what its public
//! indexes offer now (asked as a request would ask, through the config's upstream client),
//! and recording the publisher offered now as the pin, once an operator has checked it.

use std::path::Path;
use std::process::ExitCode;

use pipgate_policy::{Attestation, FileRecord, Lookup, Name};

use super::{load, EXIT_CONFIG};
use crate::provenance::pins;
use crate::state::Runtime;

/// What a public index offers of the project: its name and files (attested), or why not.
struct Offered {
    index: String,
    files: Result<Vec<FileRecord>, String>,
}

async fn offered(rt: &Runtime, name: &Name) -> Vec<Offered> {
    let policy = &rt.config.policy;
    // As a request would: the private indexes first, and no public index for a private name.
    let answers = rt
        .answers(policy.questions(std::slice::from_ref(name)))
        .await;
    let questions = policy.explain_questions(name, &answers);
    rt.answers(questions)
        .await
        .into_iter()
        .map(|a| Offered {
            index: a.index.name().to_owned(),
            files: match a.lookup {
                Lookup::Files(f) => Ok(f.to_vec()),
                Lookup::NotFound => Err("has no such project".into()),
                Lookup::Failed(why) => Err(why),
                Lookup::Found { .. } => Err("unexpected answer".into()),
            },
        })
        .collect()
}

/// The runtime of `config` with `[policy.provenance]` on, recording no pins by itself.
fn runtime(config: Option<&Path>) -> Result<Runtime, ExitCode> {
    let config = load(config)?;
    let rt = Runtime::new(config).map_err(|e| {
        eprintln!("pipgate: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    match &rt.verifier {
        Some(v) => v.read_only(),
        None => {
            eprintln!("pipgate: [policy.provenance] is not configured (or verify = \"off\"): nothing is verified or pinned");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    }
    Ok(rt)
}

/// The publisher of the newest verified file (by upload time, else the listing's order).
fn newest_publisher(files: &[FileRecord]) -> Option<(&FileRecord, &str)> {
    files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match &f.attestation {
            Some(Attestation::Verified { publisher }) => Some((i, f, publisher.as_str())),
            _ => None,
        })
        .max_by(|(i, a, _), (j, b, _)| (&a.upload_time, i).cmp(&(&b.upload_time, j)))
        .map(|(_, f, p)| (f, p))
}

pub async fn show(config: Option<&Path>, raw: &str) -> ExitCode {
    let rt = match runtime(config) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let Some(v) = rt.verifier.as_ref() else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let name = Name::new(raw);
    println!("{name}");
    match v.pinned(&name) {
        Some(p) => println!("  pinned: {p} (in {})", v.pins_path().display()),
        None => println!("  pinned: nothing (in {})", v.pins_path().display()),
    }
    for o in offered(&rt, &name).await {
        let files = match o.files {
            Ok(f) => f,
            Err(why) => {
                println!("  {}: cannot tell: {why}", o.index);
                continue;
            }
        };
        println!("  {} offers:", o.index);
        let mut unattested = 0;
        for f in &files {
            match &f.attestation {
                None => unattested += 1,
                Some(Attestation::Verified { publisher }) => {
                    println!("    {}: verified, published by {publisher}", f.filename)
                }
                Some(Attestation::Invalid(why)) => {
                    println!("    {}: provenance-invalid: {why}", f.filename)
                }
                Some(Attestation::Unavailable(why)) => {
                    println!(
                        "    {}: attestation could not be fetched: {why}",
                        f.filename
                    )
                }
            }
        }
        if unattested > 0 {
            println!("    {unattested} file(s) without an attestation");
        }
        match (newest_publisher(&files), v.pinned(&name)) {
            (Some((f, p)), Some(pin)) if !p.eq_ignore_ascii_case(&pin) => println!(
                "  the newest verified file ({}) is published by {p}, not the pinned {pin}: once checked, pin it with: pipgate provenance accept {name}",
                f.filename
            ),
            (Some((_, p)), _) => println!("  newest verified publisher: {p}"),
            (None, _) => println!("  no verified publisher offered"),
        }
    }
    ExitCode::SUCCESS
}

pub async fn accept(config: Option<&Path>, raw: &str) -> ExitCode {
    let rt = match runtime(config) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let Some(v) = rt.verifier.as_ref() else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let name = Name::new(raw);
    let offered = offered(&rt, &name).await;
    let newest = offered
        .iter()
        .filter_map(|o| o.files.as_ref().ok())
        .find_map(|f| newest_publisher(f).map(|(_, p)| p.to_owned()));
    let Some(publisher) = newest else {
        eprintln!(
            "pipgate: no index offers a verified attestation of '{name}' now: nothing pinned"
        );
        for o in &offered {
            if let Err(why) = &o.files {
                eprintln!("pipgate: {}: {why}", o.index);
            }
        }
        return ExitCode::FAILURE;
    };
    let was = v.pinned(&name);
    if let Err(e) = pins::record(v.pins_path(), &name, &publisher, true) {
        eprintln!("pipgate: {e}");
        return ExitCode::FAILURE;
    }
    let was = was.unwrap_or_else(|| "nothing".to_owned());
    println!(
        "pipgate: pinned {name} to {publisher} (was {was}) in {}; a running pipgate applies it on reload (SIGHUP or POST /reload)",
        v.pins_path().display()
    );
    ExitCode::SUCCESS
}
