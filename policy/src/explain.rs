//! `pipgate explain`: the decision for one name, in words.

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::{
    rules::private::Finding, verdict::clean, Answer, FileRecord, Index, Lookup, Name, Policy, Role,
    Target, Verdict,
};

impl Policy {
    /// Multi-line text: the normalized name, whether it is private and by which rule, and what
    /// each configured index would serve for it, and what each file rule withholds at `now`
    /// (of `version` only, when given). `answers` are those to [`Policy::questions`] and then
    /// [`Policy::explain_questions`].
    pub fn explain(
        &self,
        name: &Name,
        version: Option<&str>,
        answers: &[Answer<'_>],
        now: OffsetDateTime,
    ) -> String {
        let lookups: Vec<(&Index, &Lookup)> = answers
            .iter()
            .filter(|a| a.name == *name && a.index.role() == Role::Private)
            .map(|a| (a.index, &a.lookup))
            .collect();
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason only.
        let _ = writeln!(out, "name: {} (normalized)", clean(name.as_str()));
        let hits: Vec<&str> = self
            .private_indexes()
            .filter(|i| {
                lookups
                    .iter()
                    .any(|(l, a)| l.name() == i.name() && matches!(a, Lookup::Found { .. }))
            })
            .map(Index::name)
            .collect();
        let pattern = self.rules().private.iter().find(|p| p.matches(name));
        let allow = self.rules().allow_public.iter().find(|p| p.matches(name));
        let _ = match (pattern, hits.is_empty()) {
            (Some(p), _) => writeln!(out, "private: yes, by policy.private pattern '{p}'"),
            (None, false) => writeln!(
                out,
                "private: yes, served by private index {}",
                quoted(&hits)
            ),
            (None, true) => writeln!(out, "private: no"),
        };
        if pattern.is_some() && !hits.is_empty() {
            let _ = writeln!(out, "  also served by private index {}", quoted(&hits));
        }
        if let Some(p) = allow {
            let _ = writeln!(
                out,
                "allow_public: pattern '{p}' keeps it allowed on public indexes"
            );
        }
        for (i, l) in &lookups {
            if let Lookup::Found { tracks } = l {
                for t in tracks {
                    let _ = writeln!(
                        out,
                        "pypi:tracks on '{}': {}",
                        clean(i.name()),
                        clean(t.as_str())
                    );
                }
            }
        }
        for (i, l) in &lookups {
            if let Lookup::Failed(why) = l {
                let _ = writeln!(
                    out,
                    "private index '{}' could not answer: {}",
                    clean(i.name()),
                    clean(why)
                );
            }
        }
        let _ = writeln!(out, "indexes:");
        for index in self.indexes() {
            let target = Target::Project {
                index,
                name: name.clone(),
            };
            let line = match (index.role(), self.decide(&target, answers, now)) {
                (Role::Private, _) => {
                    let answer = lookups.iter().find(|(l, _)| l.name() == index.name());
                    match answer.map(|(_, a)| a) {
                        Some(Lookup::Found { .. }) => "serves the project (private)".to_owned(),
                        Some(Lookup::NotFound) => "does not have it".to_owned(),
                        Some(Lookup::Failed(_)) => "unavailable".to_owned(),
                        Some(Lookup::Files(_)) => "listed its files".to_owned(),
                        None => "not asked".to_owned(),
                    }
                }
                (Role::Public, Verdict::Allow) => {
                    let why = match self.find(index, name, answers) {
                        Finding::AllowPublic(p) => format!(" (allow_public '{p}')"),
                        Finding::Tracks(i) => {
                            format!(" (tracked by private index '{}', PEP 708)", clean(i.name()))
                        }
                        Finding::UnavailableIgnored(i) => format!(
                            " (private index '{}' unavailable; on_private_index_error = allow)",
                            clean(i.name())
                        ),
                        _ => String::new(),
                    };
                    format!("serves its public page, links filtered{why}")
                }
                (Role::Public, Verdict::Block(b)) => {
                    format!("blocked with {} ({})", b.status, b.rule)
                }
                (Role::Public, Verdict::Audit(b)) => format!(
                    "serves its public page; audit: would be blocked with {} ({})",
                    b.status, b.rule
                ),
            };
            let _ = writeln!(
                out,
                "  {} ({}, {}): {}",
                clean(index.name()),
                role_str(index.role()),
                index.project_url(name),
                line
            );
            let files = public_files(answers, index, name, version);
            for l in self.rules().explain(index, name, files.as_deref(), now) {
                let _ = writeln!(out, "    {}", clean(&l));
            }
        }
        out
    }
}

/// The files `index` listed for `name` (of `version` only, when given), if it was asked.
fn public_files(
    answers: &[Answer<'_>],
    index: &Index,
    name: &Name,
    version: Option<&str>,
) -> Option<Vec<FileRecord>> {
    let files = answers.iter().find_map(|a| match &a.lookup {
        Lookup::Files(f) if a.index == index && a.name == *name => Some(f),
        _ => None,
    })?;
    Some(
        files
            .iter()
            .filter(|f| {
                version.is_none_or(|v| {
                    crate::filename::version_of(&f.filename, name).is_some_and(|fv| {
                        match (
                            fv.parse::<pep440_rs::Version>(),
                            v.parse::<pep440_rs::Version>(),
                        ) {
                            (Ok(a), Ok(b)) => a == b,
                            _ => fv == v,
                        }
                    })
                })
            })
            .cloned()
            .collect(),
    )
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Public => "public",
        Role::Private => "private",
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{}'", clean(n)))
        .collect::<Vec<_>>()
        .join(", ")
}
