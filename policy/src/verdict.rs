//! Decisions for classified requests (issue rules 2-4): allow, or block with a status and rule.

use std::sync::Arc;

use time::OffsetDateTime;
use url::Url;

use crate::rules::{FileFacts, FileRecord, Mode};
use crate::{Index, Name, Policy, Role, Target};

/// What `check` needs before it can decide.
#[derive(Debug)]
pub enum Check<'p> {
    /// Decided without asking anyone.
    Done(Verdict),
    /// Ask each of these questions, then call `decide` with the answers.
    Lookup(Vec<Question<'p>>),
}

/// A question a rule needs answered before it can decide, about project `name` on `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question<'p> {
    /// The index to ask.
    pub index: &'p Index,
    /// The project.
    pub name: Name,
    /// What to ask.
    pub ask: Ask,
}

/// What a [`Question`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ask {
    /// A private index: does it serve the project (its `project_url(name)`)? Answered with
    /// `Found`, `NotFound` or `Failed`.
    Private,
    /// A public index: which files does the project offer, with their upload times and hashes
    /// (its project page, as PEP 691 JSON when it can)? Answered with `Files`, `NotFound` or
    /// `Failed`. A private index is asked this only after a decision, for the digest the file
    /// cache keys a download by ([`Policy::digest_questions`]).
    Files,
}

/// A private index's answer to a [`Question`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer<'p> {
    /// The index that answered.
    pub index: &'p Index,
    /// The project it was asked about.
    pub name: Name,
    /// What it said.
    pub lookup: Lookup,
}

impl<'p> Answer<'p> {
    /// The answer `lookup` of `index` about `name`.
    pub fn new(index: &'p Index, name: &Name, lookup: Lookup) -> Answer<'p> {
        Answer {
            index,
            name: name.clone(),
            lookup,
        }
    }
}

/// What a private index said about a project page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The index serves the project; `tracks` are its PEP 708 `pypi:tracks` URLs.
    Found {
        /// Absolute URLs of public projects this private project tracks.
        tracks: Vec<Url>,
    },
    /// 404: the index does not have it.
    NotFound,
    /// Anything else (timeout, 5xx, TLS error): the reason, for messages.
    Failed(String),
    /// The files a public index lists for the project ([`Ask::Files`]).
    Files(Arc<[FileRecord]>),
}

/// The outcome for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward upstream (and rewrite pages).
    Allow,
    /// Answer locally.
    Block(Block),
    /// A rule in audit mode would block: log and count it, then forward as if allowed.
    Audit(Block),
}

/// A refusal, answered by pipgate with `status` and `message` as a one-line text body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// HTTP status.
    pub status: u16,
    /// The rule that fired.
    pub rule: Rule,
    /// One line naming the project and the rule.
    pub message: String,
}

/// Why a request was blocked; stable labels for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The request path was refused before classification.
    BadPath,
    /// A path on an index host that pipgate does not serve.
    UnknownPath,
    /// The name matches `policy.private`.
    PrivatePattern,
    /// A private index serves the name.
    PrivateIndex,
    /// A private index could not answer, so privacy could not be ruled out.
    PrivateIndexUnavailable,
    /// A file on a public host whose name does not say which project it is.
    UnparsableFilename,
    /// A link that is not https to the index's own hosts (dropped from pages).
    ExternalLink,
    /// The project is quarantined by its index (PEP 792).
    Quarantine,
    /// The file was uploaded less than `policy.cooldown.min_age` ago.
    Cooldown,
    /// The name, version or file is in `policy.deny`.
    Deny,
    /// An advisory of `policy.advisories` lists the version or file (or its snapshot is stale).
    Advisory,
    /// A download's bytes do not have the sha256 its index advertised (`policy.integrity`).
    HashMismatch,
    /// A file's sha256 cannot be learnt and `policy.integrity.on_unknown_hash = "block"`.
    HashUnknown,
    /// The file's PEP 740 attestation does not verify (`policy.provenance`).
    ProvenanceInvalid,
    /// A name `policy.provenance.require` lists offers a file without an attestation.
    ProvenanceMissing,
    /// The file's verified publisher is not the one pinned for its project.
    PublisherChanged,
}

impl Rule {
    /// Kebab-case label, stable across releases.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::BadPath => "bad-path",
            Rule::UnknownPath => "unknown-path",
            Rule::PrivatePattern => "private-pattern",
            Rule::PrivateIndex => "private-index",
            Rule::PrivateIndexUnavailable => "private-index-unavailable",
            Rule::UnparsableFilename => "unparsable-filename",
            Rule::ExternalLink => "external-link",
            Rule::Quarantine => "quarantine",
            Rule::Cooldown => "cooldown",
            Rule::Deny => "deny",
            Rule::Advisory => "advisory",
            Rule::HashMismatch => "hash-mismatch",
            Rule::HashUnknown => "hash-unknown",
            Rule::ProvenanceInvalid => "provenance-invalid",
            Rule::ProvenanceMissing => "provenance-missing",
            Rule::PublisherChanged => "publisher-changed",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Policy {
    /// First step of a decision at `now`: [`Policy::next`] with no answers yet.
    pub fn check<'p>(&'p self, target: &Target<'p>, now: OffsetDateTime) -> Check<'p> {
        self.next(target, &[], now)
    }

    /// The next step of a decision at `now`, given the answers so far: final, or the next
    /// questions. Private indexes are asked first, about every name the request may be about.
    /// Only when no name rule keeps those names away from the public index is that index asked
    /// anything about them: for a direct download the file rules judge by upload time or hash,
    /// the project page of each reading. The caller asks and calls again until it is `Done`;
    /// a question already answered is never asked again.
    pub fn next<'p>(
        &'p self,
        target: &Target<'p>,
        answers: &[Answer<'p>],
        now: OffsetDateTime,
    ) -> Check<'p> {
        let unasked = |q: &Question<'_>| !answered(answers, q);
        let private: Vec<Question<'p>> = self
            .questions(names_to_decide(target))
            .into_iter()
            .filter(unasked)
            .collect();
        if !private.is_empty() {
            return Check::Lookup(private);
        }
        if let Target::File {
            index, projects, ..
        } = target
        {
            let lookup = index.role() == Role::Public
                && !projects.is_empty()
                && self.rules().needs(index).page_lookup();
            // A private name's page is never asked for on a public index.
            if lookup && self.private_verdict(target, answers) == Verdict::Allow {
                let files: Vec<Question<'p>> = files_questions(index, projects)
                    .into_iter()
                    .filter(unasked)
                    .collect();
                if !files.is_empty() {
                    return Check::Lookup(files);
                }
            }
        }
        Check::Done(self.decide(target, answers, now))
    }

    /// What to ask private indexes before deciding about `names`: every private index, about
    /// each of them (`next` asks this for a request's names, `pipgate explain` for its name).
    pub fn questions(&self, names: &[Name]) -> Vec<Question<'_>> {
        self.private_indexes()
            .flat_map(|index| {
                names.iter().map(move |name| Question {
                    index,
                    name: name.clone(),
                    ask: Ask::Private,
                })
            })
            .collect()
    }

    /// What `pipgate explain` asks about `name` once the private indexes have answered
    /// (`answers`): the project page of every public index whose file rules need upload times
    /// or hashes, and that the name rules let consult about it (never one for a private name).
    pub fn explain_questions<'p>(
        &'p self,
        name: &Name,
        answers: &[Answer<'p>],
    ) -> Vec<Question<'p>> {
        self.indexes()
            .iter()
            .filter(|index| index.role() == Role::Public && self.rules().needs(index).page_lookup())
            .filter(|index| {
                let page = Target::Project {
                    index,
                    name: name.clone(),
                };
                self.private_verdict(&page, answers) == Verdict::Allow
            })
            .flat_map(|index| files_questions(index, std::slice::from_ref(name)))
            .collect()
    }

    /// The verdict for `target` at `now` given the answers to `check`'s questions: the name
    /// rules first (`rules/private.rs`), then the file rules. A file is blocked when any
    /// project its name can be read as would be.
    pub fn decide(
        &self,
        target: &Target<'_>,
        answers: &[Answer<'_>],
        now: OffsetDateTime,
    ) -> Verdict {
        let index = target.index();
        match target {
            Target::Root { .. } => return Verdict::Allow,
            Target::Other { .. } => {
                return block(
                    404,
                    Rule::UnknownPath,
                    format!(
                        "pipgate: this path is not an index page of '{}' (rule {})",
                        clean(index.name()),
                        Rule::UnknownPath
                    ),
                )
            }
            _ if index.role() == Role::Private => return Verdict::Allow,
            Target::File {
                filename, projects, ..
            } if projects.is_empty() => {
                return block(
                    403,
                    Rule::UnparsableFilename,
                    format!(
                        "pipgate: file '{}' on public index '{}' does not name a project, so it cannot be proven public (rule {})",
                        clean(filename),
                        clean(index.name()),
                        Rule::UnparsableFilename
                    ),
                )
            }
            _ => {}
        }
        match self.private_verdict(target, answers) {
            Verdict::Allow => self.file_rules_verdict(target, answers, now),
            blocked => blocked,
        }
    }

    /// The file rules' verdict on a public page or file: a denied name, or a direct download
    /// of a file the rules withhold from pages (so lock files and cached URLs do not bypass
    /// them).
    fn file_rules_verdict(
        &self,
        target: &Target<'_>,
        answers: &[Answer<'_>],
        now: OffsetDateTime,
    ) -> Verdict {
        let index = target.index();
        let status = if matches!(target, Target::File { .. }) {
            403
        } else {
            404
        };
        if let Some(d) = self.rules().unavailable(index, now) {
            let b = Block {
                status: 503,
                rule: d.rule,
                message: format!("pipgate: {} (rule {})", clean(&d.reason), d.rule),
            };
            return as_mode(d.mode, b);
        }
        for name in target.names() {
            if let Some(d) = self.rules().denied(index, name) {
                let b = Block {
                    status,
                    rule: d.rule,
                    message: format!("pipgate: {} (rule {})", clean(&d.reason), d.rule),
                };
                return as_mode(d.mode, b);
            }
        }
        match target {
            Target::File { .. } => self.download_verdict(target, answers, now),
            _ => Verdict::Allow,
        }
    }

    /// A direct download judged as its page would judge it: by each reading whose page lists
    /// the file when the rules looked the page up (the likeliest reading when none does), else
    /// by every reading.
    fn download_verdict(
        &self,
        target: &Target<'_>,
        answers: &[Answer<'_>],
        now: OffsetDateTime,
    ) -> Verdict {
        let Target::File {
            index,
            filename,
            projects,
            metadata,
        } = target
        else {
            return Verdict::Allow;
        };
        let dist = dist_name(filename, *metadata);
        let lookup = self.rules().needs(index).page_lookup();
        let mut audit = None;
        for name in self.readings(index, projects, dist, answers) {
            let listed = listing(answers, index, name);
            let facts = match listed.and_then(|l| l.iter().find(|f| f.filename == dist)) {
                Some(r) => r.facts(),
                // Not on a listing that was read: newer than the listing, perhaps.
                None => FileFacts {
                    filename: dist,
                    unlisted: listed.is_some(),
                    unknown: listed.is_none() && lookup,
                    ..FileFacts::default()
                },
            };
            let Some(w) = self.rules().judge(index, name, now).file(&facts) else {
                continue;
            };
            let b = Block {
                status: 403,
                rule: w.rule,
                message: format!("pipgate: {} (rule {})", clean(&w.reason), w.rule),
            };
            match w.mode {
                Mode::Enforce => return Verdict::Block(b),
                Mode::Audit => {
                    audit.get_or_insert(b);
                }
            }
        }
        audit.map_or(Verdict::Allow, Verdict::Audit)
    }
}

impl Policy {
    /// The projects a direct download of `dist` is judged as: each reading whose page lists
    /// the file when the rules looked the pages up (the likeliest reading when none does),
    /// else every reading.
    fn readings<'a>(
        &self,
        index: &Index,
        projects: &'a [Name],
        dist: &str,
        answers: &[Answer<'_>],
    ) -> Vec<&'a Name> {
        let lookup = self.rules().needs(index).page_lookup();
        if !lookup {
            return projects.iter().collect();
        }
        let listed_in: Vec<&Name> = projects
            .iter()
            .filter(|n| {
                listing(answers, index, n).is_some_and(|l| l.iter().any(|f| f.filename == dist))
            })
            .collect();
        if listed_in.is_empty() {
            projects.iter().take(1).collect()
        } else {
            listed_in
        }
    }

    /// What to ask, once a download from a private index's file host is allowed, to learn the
    /// sha256 that index advertises for it: its listing of each project the file name can be
    /// read as (the file cache keys a download by that digest; the policy itself never needs
    /// it, as private indexes are exempt from the file rules). Empty for anything else: a
    /// public download's listing is asked before the decision whenever a rule needs it.
    pub fn digest_questions<'p>(&'p self, target: &Target<'p>) -> Vec<Question<'p>> {
        match target {
            Target::File {
                index,
                projects,
                metadata: false,
                ..
            } if index.role() == Role::Private => files_questions(index, projects),
            _ => Vec::new(),
        }
    }

    /// The sha256 (hex) an index advertised for the distribution a direct download fetches, as
    /// the lookup of its project page read it: what the download's bytes must hash to
    /// (`[policy.integrity]`, for a public index) and what the file cache keys it by. `None`
    /// when no listing that was read gives one (a private index's listing is only read when
    /// [`Policy::digest_questions`] asked for it), and for a `.metadata` file (its bytes are
    /// not the distribution's). PyPI's file names are unique across the index, so the first
    /// reading that lists it decides.
    pub fn advertised_sha256(&self, target: &Target<'_>, answers: &[Answer<'_>]) -> Option<String> {
        let Target::File {
            index,
            filename,
            projects,
            metadata: false,
        } = target
        else {
            return None;
        };
        self.readings(index, projects, filename, answers)
            .into_iter()
            .filter_map(|name| listing(answers, index, name))
            .find_map(|l| l.iter().find(|f| f.filename == *filename))
            .and_then(|f| f.sha256.clone())
    }
}

/// A download's distribution file name: a PEP 658 `.metadata` file is about the file it is
/// named after.
fn dist_name(filename: &str, metadata: bool) -> &str {
    if metadata {
        &filename[..filename.len().saturating_sub(".metadata".len())]
    } else {
        filename
    }
}

/// Whether `q` has an answer: one from its index about its name (a public index is only ever
/// asked for files, a private one only whether it has the name).
fn answered(answers: &[Answer<'_>], q: &Question<'_>) -> bool {
    answers.iter().any(|a| {
        let ask = match a.index.role() {
            Role::Public => Ask::Files,
            Role::Private => Ask::Private,
        };
        a.index == q.index && a.name == q.name && ask == q.ask
    })
}

/// The files `index` listed for `name`, if a lookup read its page.
fn listing<'a>(answers: &'a [Answer<'_>], index: &Index, name: &Name) -> Option<&'a [FileRecord]> {
    answers.iter().find_map(|a| match &a.lookup {
        Lookup::Files(files) if a.name == *name && a.index == index => Some(&files[..]),
        _ => None,
    })
}

fn files_questions<'p>(index: &'p Index, names: &[Name]) -> Vec<Question<'p>> {
    names
        .iter()
        .map(|name| Question {
            index,
            name: name.clone(),
            ask: Ask::Files,
        })
        .collect()
}

fn as_mode(mode: Mode, b: Block) -> Verdict {
    match mode {
        Mode::Enforce => Verdict::Block(b),
        Mode::Audit => Verdict::Audit(b),
    }
}

/// The names whose privacy decides `target`: those of public-index pages and files.
fn names_to_decide<'a>(target: &'a Target<'_>) -> &'a [Name] {
    match target {
        _ if target.index().role() == Role::Private => &[],
        _ => target.names(),
    }
}

pub(crate) fn block(status: u16, rule: Rule, message: String) -> Verdict {
    Verdict::Block(Block {
        status,
        rule,
        message,
    })
}

/// Keeps messages on one line whatever a peer put in a name or file name.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
