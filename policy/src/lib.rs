//! Sans-IO policy for pipgate: what may be served, and the re-synthesized index pages.

pub mod address;
mod connection;
mod error;
mod explain;
mod filename;
mod host;
mod index;
mod name;
mod page;
mod pattern;
mod policy;
mod redirect;
mod request;
pub mod rules;
mod verdict;

pub use connection::{Arrival, Destination, Network, Refused, Route, Unlisted, LEGACY_PYPI};
pub use error::{Error, PathError, RewriteError};
pub use host::HostPattern;
pub use index::{Index, Role};
pub use name::{normalize, Name};
pub use page::{
    files_of_legacy_json, files_of_page, private_page_tracks, with_legacy_times, PageFormat,
    ProjectStream, Rewritten, RootStream, Summary,
};
pub use pattern::NamePattern;
pub use policy::Policy;
pub use redirect::{is_redirect, PageKind};
pub use request::Target;
pub use rules::private::OnPrivateIndexError;
pub use rules::{
    Attestation, Denied, FileFacts, FileRecord, FileRules, Judge, Mode, Needs, OnUnknownUploadTime,
    Pins, Rules, Tables, Tally, Withheld,
};
pub use verdict::{Answer, Ask, Block, Check, Lookup, Question, Rule, Verdict};

/// Hooks for `policy/fuzz`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Whether the fast HTML scanner, where it answers, reads `html` exactly as html5gum does.
    pub fn scanner_matches_reference(html: &str) -> bool {
        crate::page::scanner_matches_reference(html)
    }
}
