//! `pipgate explain`: the decision for one name, in words.

use std::fmt::Write as _;

use crate::{
    verdict::{clean, Finding},
    Answer, Index, Lookup, Name, Policy, Role, Target, Verdict,
};

impl Policy {
    /// Multi-line text: the normalized name, whether it is private and by which rule, and what
    /// each configured index would serve for it. `answers` are the private indexes' answers.
    pub fn explain(&self, name: &Name, answers: &[Answer<'_>]) -> String {
        let lookups: Vec<(&Index, &Lookup)> = answers
            .iter()
            .filter(|a| a.name == *name)
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
            let line = match (index.role(), self.decide(&target, answers)) {
                (Role::Private, _) => {
                    let answer = lookups.iter().find(|(l, _)| l.name() == index.name());
                    match answer.map(|(_, a)| a) {
                        Some(Lookup::Found { .. }) => "serves the project (private)".to_owned(),
                        Some(Lookup::NotFound) => "does not have it".to_owned(),
                        Some(Lookup::Failed(_)) => "unavailable".to_owned(),
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
            };
            let _ = writeln!(
                out,
                "  {} ({}, {}): {}",
                clean(index.name()),
                role_str(index.role()),
                index.project_url(name),
                line
            );
        }
        out
    }
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
