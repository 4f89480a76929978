//! Decisions for classified requests (issue rules 2-4): allow, or block with a status and rule.

use url::Url;

use crate::{Index, Name, NamePattern, OnPrivateIndexError, Policy, Role, Target};

/// What `check` needs before it can decide.
#[derive(Debug)]
pub enum Check<'p> {
    /// Decided without asking anyone.
    Done(Verdict),
    /// Ask each of these questions, then call `decide` with the answers.
    Lookup(Vec<Question<'p>>),
}

/// A question for a private index: does it serve `name` (its `project_url(name)`)?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question<'p> {
    /// The private index to ask.
    pub index: &'p Index,
    /// The project.
    pub name: Name,
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
}

/// The outcome for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward upstream (and rewrite pages).
    Allow,
    /// Answer locally.
    Block(Block),
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
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name is (or is not) kept away from public indexes; shared by `decide` and `explain`.
#[derive(Debug)]
pub(crate) enum Finding<'a> {
    AllowPublic(&'a NamePattern),
    Tracks(&'a Index),
    Pattern(&'a NamePattern),
    PrivateIndex(&'a Index),
    Unavailable(&'a Index, &'a str),
    /// A private index failed but `on_private_index_error = "allow"`.
    UnavailableIgnored(&'a Index),
    NotPrivate,
}

impl Policy {
    /// First step of a decision: either final, or the questions for private indexes (every
    /// private index, about every name the request may be about).
    pub fn check(&self, target: &Target<'_>) -> Check<'_> {
        let questions = self.questions(names_to_decide(target));
        if questions.is_empty() {
            Check::Done(self.decide(target, &[]))
        } else {
            Check::Lookup(questions)
        }
    }

    /// What to ask before deciding about `names`: every private index, about each of them
    /// (`check` asks this for a request's names, `pipgate explain` for the name it is given).
    pub fn questions(&self, names: &[Name]) -> Vec<Question<'_>> {
        self.private_indexes()
            .flat_map(|index| {
                names.iter().map(move |name| Question {
                    index,
                    name: name.clone(),
                })
            })
            .collect()
    }

    /// The verdict for `target` given what the private indexes said. A file is blocked when
    /// any project its name can be read as would be: a private reading first, else an
    /// unavailable private index.
    pub fn decide(&self, target: &Target<'_>, answers: &[Answer<'_>]) -> Verdict {
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
        let mut unavailable = None;
        for name in target.names() {
            match self.find(index, name, answers) {
                Finding::AllowPublic(_)
                | Finding::Tracks(_)
                | Finding::NotPrivate
                | Finding::UnavailableIgnored(_) => {}
                finding @ (Finding::Pattern(_) | Finding::PrivateIndex(_)) => {
                    return private_block(target, name, &finding)
                }
                finding @ Finding::Unavailable(..) => {
                    unavailable.get_or_insert((name, finding));
                }
            }
        }
        match unavailable {
            Some((name, finding)) => private_block(target, name, &finding),
            None => Verdict::Allow,
        }
    }

    /// The decision order of the issue, for name `name` on public index `public`.
    pub(crate) fn find<'a>(
        &'a self,
        public: &Index,
        name: &Name,
        answers: &'a [Answer<'a>],
    ) -> Finding<'a> {
        let rules = self.rules();
        if let Some(p) = rules.allow_public.iter().find(|p| p.matches(name)) {
            return Finding::AllowPublic(p);
        }
        // Only answers from indexes that really are private count: a caller mixing up its
        // lookups must not turn a public page into a privacy oracle.
        let answers = || {
            answers
                .iter()
                .filter(|a| a.index.role() == Role::Private && a.name == *name)
                .map(|a| (a.index, &a.lookup))
        };
        for (i, l) in answers() {
            if let Lookup::Found { tracks } = l {
                if tracks.iter().any(|t| tracks_project(t, public, name)) {
                    return Finding::Tracks(i);
                }
            }
        }
        if let Some(p) = rules.private.iter().find(|p| p.matches(name)) {
            return Finding::Pattern(p);
        }
        if let Some((i, _)) = answers().find(|(_, l)| matches!(l, Lookup::Found { .. })) {
            return Finding::PrivateIndex(i);
        }
        if let Some((i, l)) = answers().find(|(_, l)| matches!(l, Lookup::Failed(_))) {
            let why = match l {
                Lookup::Failed(w) => w.as_str(),
                _ => "",
            };
            return match rules.on_private_index_error {
                OnPrivateIndexError::Block => Finding::Unavailable(i, why),
                OnPrivateIndexError::Allow => Finding::UnavailableIgnored(i),
            };
        }
        Finding::NotPrivate
    }
}

/// The names whose privacy decides `target`: those of public-index pages and files.
fn names_to_decide<'a>(target: &'a Target<'_>) -> &'a [Name] {
    match target {
        _ if target.index().role() == Role::Private => &[],
        _ => target.names(),
    }
}

/// The block for `target` because its project `name` is private (or may be: `Unavailable`).
fn private_block(target: &Target<'_>, name: &Name, finding: &Finding<'_>) -> Verdict {
    let index = target.index();
    let (status, what) = match target {
        Target::File { filename, .. } => (
            403,
            format!("file '{}' of '{}'", clean(filename), clean(name.as_str())),
        ),
        _ => (404, format!("'{}'", clean(name.as_str()))),
    };
    let public = clean(index.name());
    match finding {
        Finding::Pattern(p) => block(
            status,
            Rule::PrivatePattern,
            format!("pipgate: {what} is private (policy.private pattern '{p}'); public index '{public}' is not consulted"),
        ),
        Finding::PrivateIndex(i) => block(
            status,
            Rule::PrivateIndex,
            format!(
                "pipgate: {what} is private (served by private index '{}'); public index '{public}' is not consulted",
                clean(i.name())
            ),
        ),
        Finding::Unavailable(i, why) => block(
            503,
            Rule::PrivateIndexUnavailable,
            format!(
                "pipgate: private index '{}' could not be asked about {what} ({}); public index '{public}' is not consulted (rule {})",
                clean(i.name()),
                clean(why),
                Rule::PrivateIndexUnavailable
            ),
        ),
        _ => Verdict::Allow,
    }
}

fn block(status: u16, rule: Rule, message: String) -> Verdict {
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

/// Whether a PEP 708 track URL designates `name` on `public` (same origin, the index's prefix,
/// and a last segment that normalizes to `name`).
pub(crate) fn tracks_project(track: &Url, public: &Index, name: &Name) -> bool {
    let same_origin = track.scheme() == public.url().scheme()
        && track
            .host_str()
            .and_then(crate::index::canonical_host)
            .as_deref()
            == Some(public.host())
        && track.port_or_known_default() == Some(public.port());
    if !same_origin {
        return false;
    }
    let segs: Vec<&str> = match track.path_segments() {
        Some(s) => s.filter(|s| !s.is_empty()).collect(),
        None => return false,
    };
    let prefix: Vec<&str> = public
        .url()
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    match segs.split_last() {
        Some((last, head)) if head == prefix.as_slice() => {
            let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
            Name::new(&decoded) == *name
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
