//! The name rules: a private name never resolves to a public link. In the order they are
//! asked: `policy.allow_public`, a private project's PEP 708 tracks of the public one, the
//! `policy.private` patterns, the private indexes' answers, and what to do when one of them
//! cannot answer (`policy.on_private_index_error`).
//!
//! ```toml
//! [policy]
//! private = ["acme-*"]                 # names private whatever the indexes say
//! allow_public = ["acme-sdk"]          # names public although private
//! on_private_index_error = "block"     # or "allow"
//! ```
//! These were the first rules: their keys are `[policy]`'s own, not a table of their own.

use serde::Deserialize;
use url::Url;

use super::{toml_list, toml_string, Rules, Tables};

use crate::verdict::{block, clean};
use crate::{Answer, Index, Lookup, Name, NamePattern, Policy, Role, Rule, Target, Verdict};

/// What to do with a public request when a private index cannot say whether it has the name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPrivateIndexError {
    /// Fail closed: answer 503 (the default).
    #[default]
    Block,
    /// Fail open: decide as if the private index did not have the name.
    Allow,
}

impl OnPrivateIndexError {
    fn as_str(self) -> &'static str {
        match self {
            OnPrivateIndexError::Block => "block",
            OnPrivateIndexError::Allow => "allow",
        }
    }
}

/// A list of name patterns, each refused one an error at its own place in the file.
struct Patterns(Vec<NamePattern>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Patterns;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of name patterns like [\"acme-*\"]")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Patterns, S::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element()? {
                    out.push(p);
                }
                Ok(Patterns(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Reads the name rules' keys of `[policy]` into `rules` (a key the file lacks keeps its
/// default).
pub(super) fn read(tables: &mut impl Tables, rules: &mut Rules) {
    if let Some(Patterns(p)) = tables.table("private") {
        rules.private = p;
    }
    if let Some(Patterns(p)) = tables.table("allow_public") {
        rules.allow_public = p;
    }
    if let Some(on_error) = tables.table("on_private_index_error") {
        rules.on_private_index_error = on_error;
    }
}

/// The name rules' keys as `pipgate config check` prints them.
pub(super) fn print(rules: &Rules) -> String {
    let patterns = |p: &[NamePattern]| toml_list(p.iter().map(NamePattern::as_str));
    format!(
        "private = {}\nallow_public = {}\non_private_index_error = {}\n",
        patterns(&rules.private),
        patterns(&rules.allow_public),
        toml_string(rules.on_private_index_error.as_str())
    )
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
    /// The name rules' verdict on a public page or file: blocked when any name the request may
    /// be about is private (a private reading first, else an unavailable private index).
    pub(crate) fn private_verdict(&self, target: &Target<'_>, answers: &[Answer<'_>]) -> Verdict {
        let index = target.index();
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
