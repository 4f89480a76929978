//! The rules home: every rule that can block a name or withhold a file, one file each.
//!
//! A rule file holds the rule's config table (serde, `deny_unknown_fields`), its parse into
//! typed form, its decision, its `explain` lines and its tests; [`read`] registers it with one
//! line. The name rules that keep private names away from public indexes (patterns,
//! `allow_public`, PEP 708 tracks, private-index answers) are `private.rs`; the rules that
//! decide about files implement [`FileRule`], and every page writer (HTML, PEP 691 JSON,
//! legacy JSON) asks them through one [`Judge`] with the same [`FileFacts`], so there is one
//! way to drop a file.
//!
//! Rules are sans-IO: the clock comes in as `now`, and what a rule needs to know about files
//! beyond a page's own bytes (upload times and hashes for a direct download) it declares in
//! [`Needs`], for the proxy to fetch (see [`crate::Question`]).

mod advisories;
mod cooldown;
mod deny;
mod integrity;
pub(crate) mod private;
pub mod provenance;
pub(crate) mod quarantine;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use pep440_rs::Version;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{Index, Name, NamePattern, OnPrivateIndexError, Role, Rule};

pub use advisories::{Advisory, Builder, Feed, OnStale, Snapshot, Source};
pub use cooldown::OnUnknownUploadTime;
pub use integrity::OnUnknownHash;
pub use provenance::{Attestation, Pins};

/// Whether a rule acts on what it finds or only reports it (`mode = "enforce" | "audit"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Block and withhold (the default).
    #[default]
    Enforce,
    /// Log and count what would be blocked (decision `audit`), and serve as if allowed.
    Audit,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }

    /// The metrics action of a file this mode keeps from a client.
    pub fn withhold_action(self) -> &'static str {
        match self {
            Mode::Enforce => "withhold",
            Mode::Audit => "audit",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the file rules need to know about each file before they can decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Its upload time (PEP 700): a page that lacks them is asked for as PEP 691 JSON, and a
    /// direct download looks its project page up.
    pub upload_time: bool,
    /// Its version (read from the file name).
    pub version: bool,
    /// Its sha256 (from the page; a direct download looks its project page up).
    pub sha256: bool,
    /// Its verified provenance (PEP 740): every public page and direct download looks the
    /// project's files up, and the proxy verifies the attestations they offer.
    pub provenance: bool,
}

impl Needs {
    fn or(self, o: Needs) -> Needs {
        Needs {
            upload_time: self.upload_time || o.upload_time,
            version: self.version || o.version,
            sha256: self.sha256 || o.sha256,
            provenance: self.provenance || o.provenance,
        }
    }

    /// Whether a direct download must look its project page up.
    pub fn page_lookup(self) -> bool {
        self.upload_time || self.sha256 || self.provenance
    }
}

/// The facts about one file, the same whichever page format (or lookup) offered it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileFacts<'a> {
    /// The file name (of the distribution, not of its `.metadata`).
    pub filename: &'a str,
    /// The upload time as the index wrote it (RFC 3339), when it said.
    pub upload_time: Option<&'a str>,
    /// The sha256 digest the index advertised (hex), when it did.
    pub sha256: Option<&'a str>,
    /// Whether the index marks the file yanked.
    pub yanked: bool,
    /// Whether the index marks the project quarantined (PEP 792).
    pub quarantined: bool,
    /// The index's listing of the project (a lookup, up to a minute old) does not have the
    /// file: it may have been uploaded after the listing was read, so its upload time is not
    /// merely unknown but possibly a minute old.
    pub unlisted: bool,
    /// A direct download whose project's files could not be listed (the lookup failed or
    /// found no page): nothing but its name is known.
    pub unknown: bool,
    /// Its provenance URL (PEP 740 `provenance` / `data-provenance`), when the index offers one.
    pub provenance: Option<&'a str>,
    /// What verifying that provenance gave, when the proxy verified it (from the lookup).
    pub attestation: Option<&'a Attestation>,
}

/// One file as a public index lists it: what a direct download is judged by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileRecord {
    /// The file name.
    pub filename: String,
    /// The upload time (RFC 3339), when the index gave one.
    pub upload_time: Option<String>,
    /// The advertised sha256 (hex), when the index gave one.
    pub sha256: Option<String>,
    /// Whether it is yanked.
    pub yanked: bool,
    /// Whether the index marks its project quarantined (PEP 792).
    pub quarantined: bool,
    /// Its provenance URL (PEP 740), when the index offers one.
    pub provenance: Option<String>,
    /// What verifying it gave (the proxy fills this in when `[policy.provenance]` is on).
    pub attestation: Option<Attestation>,
}

impl FileRecord {
    /// The facts of this record.
    pub fn facts(&self) -> FileFacts<'_> {
        FileFacts {
            filename: &self.filename,
            upload_time: self.upload_time.as_deref(),
            sha256: self.sha256.as_deref(),
            yanked: self.yanked,
            quarantined: self.quarantined,
            unlisted: false,
            unknown: false,
            provenance: self.provenance.as_deref(),
            attestation: self.attestation.as_ref(),
        }
    }
}

/// A file a rule keeps from the client (or, in audit mode, would).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withheld {
    /// The rule.
    pub rule: Rule,
    /// Enforced, or only reported.
    pub mode: Mode,
    /// One line: the file and why.
    pub reason: String,
}

/// A whole name a rule refuses (pages 404, files 403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The rule.
    pub rule: Rule,
    /// Enforced, or only reported.
    pub mode: Mode,
    /// Why, naming the config entry.
    pub reason: String,
}

/// A rule that decides about files (and possibly whole names).
pub(crate) trait FileRule: fmt::Debug + Send + Sync {
    /// Its stable label.
    fn rule(&self) -> Rule;
    /// Its name in `explain` and the audit-mode warning: its label, unless it withholds under
    /// several (then its table's name).
    fn name(&self) -> &'static str {
        self.rule().as_str()
    }
    /// Enforce or audit.
    fn mode(&self) -> Mode;
    /// What it needs to know about a file.
    fn needs(&self) -> Needs;
    /// Whether its decisions change with the clock: a page's ETag cannot then be derived from
    /// upstream's alone.
    fn uses_clock(&self) -> bool {
        false
    }
    /// Whether it reads the versions of `project`'s files (parsing every file's version costs
    /// more than the rest of its judgement; a rule with nothing to say of the project does not).
    fn versions_of(&self, _project: &Name) -> bool {
        self.needs().version
    }
    /// Why no public page or file can be decided at `now` (503), if so: the rule's own data is
    /// missing or too old to decide by.
    fn unavailable(&self, _now: OffsetDateTime) -> Option<String> {
        None
    }
    /// A copy of the rule bound to what it decides by now, for one page's judge (a rule whose
    /// data is swapped while pages are served, which has a [`FileRule::feed`]); `None`: itself.
    fn pinned(&self) -> Option<Arc<dyn FileRule>> {
        None
    }
    /// The advisory feed it decides by, for the proxy to fill.
    fn feed(&self) -> Option<&Arc<advisories::Feed>> {
        None
    }
    /// What the proxy needs to verify provenance for it (`[policy.provenance]`, when on).
    fn provenance(&self) -> Option<&provenance::Settings> {
        None
    }
    /// Why the whole of `name` is refused, if it is.
    fn denies(&self, _name: &Name) -> Option<String> {
        None
    }
    /// Why a file whose bytes have the sha256 `hex` (lower case) is refused, if it is, given
    /// the sha256 its index `advertised` for it (hex, when it is known): a download is hashed
    /// as it streams, and cut before its end when this answers.
    fn denies_digest(&self, _hex: &str, _advertised: Option<&str>) -> Option<String> {
        None
    }
    /// Whether it compares a download's digest with the advertised one (then every public
    /// download is hashed as it streams, and counted as verified, mismatched or unknown).
    fn verifies_digests(&self) -> bool {
        false
    }
    /// The rule a file it withholds from a page (or refuses as a download) is labelled with:
    /// its own, unless one rule file has two ([`Rule::HashMismatch`] / [`Rule::HashUnknown`]).
    fn withheld_as(&self) -> Rule {
        self.rule()
    }
    /// Why `file` (of project `project`, version `version` when it could be read) is withheld
    /// at `now`, if it is.
    fn withholds(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        version: Option<&Version>,
        now: OffsetDateTime,
    ) -> Option<String>;
    /// [`FileRule::withholds`] with the label it withholds under (a rule with several labels
    /// overrides this).
    fn judge(
        &self,
        project: &Name,
        file: &FileFacts<'_>,
        version: Option<&Version>,
        now: OffsetDateTime,
    ) -> Option<(Rule, String)> {
        self.withholds(project, file, version, now)
            .map(|why| (self.withheld_as(), why))
    }
    /// Lines for `pipgate explain`: what it does to `name`, given the files a public index
    /// lists for it (when they could be learnt).
    fn explain(
        &self,
        name: &Name,
        files: Option<&[FileRecord]>,
        now: OffsetDateTime,
    ) -> Vec<String>;
    /// Its table as `pipgate config check` prints it (`None`: nothing configurable).
    fn print(&self) -> Option<String>;
}

/// Where a rule's config table comes from: the proxy reads the file, a rule reads its table.
pub trait Tables {
    /// `[policy] <key>` deserialized (a rule's table `[policy.<key>]`, or one of `[policy]`'s
    /// own keys), `None` when the file has no such key; a value that does not deserialize is
    /// recorded as an error of that key.
    fn table<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T>;
    /// Records an error about `key` of `[policy.<table>]` (a value that deserialized but is
    /// not valid).
    fn error(&mut self, table: &'static str, key: &'static str, message: String);
}

/// A rule built from its table.
trait Configured: FileRule + Sized + 'static {
    /// Its table under `[policy]`.
    const TABLE: &'static str;
    /// The table's keys.
    type Config: DeserializeOwned;
    /// The typed rule; `mode` is `[policy] mode`, which the table's own `mode` overrides. An
    /// error names the key it is about.
    fn build(config: Self::Config, mode: Mode) -> Result<Self, (&'static str, String)>;
}

fn add<R: Configured>(tables: &mut impl Tables, mode: Mode, rules: &mut Vec<Arc<dyn FileRule>>) {
    let Some(config) = tables.table::<R::Config>(R::TABLE) else {
        return;
    };
    match R::build(config, mode) {
        Ok(rule) => rules.push(Arc::new(rule)),
        Err((key, e)) => tables.error(R::TABLE, key, e),
    }
}

/// A rule that is on without its table (`[policy.integrity]`): built from its defaults.
fn add_or_default<R: Configured>(
    tables: &mut impl Tables,
    mode: Mode,
    rules: &mut Vec<Arc<dyn FileRule>>,
) where
    R::Config: Default,
{
    let config = tables.table::<R::Config>(R::TABLE).unwrap_or_default();
    match R::build(config, mode) {
        Ok(rule) => rules.push(Arc::new(rule)),
        Err((key, e)) => tables.error(R::TABLE, key, e),
    }
}

/// Every rule of `[policy]`: its `mode`, the name rules' keys (`private.rs`) and the file
/// rules' tables.
pub fn read_all(tables: &mut impl Tables) -> Rules {
    let mut rules = Rules {
        mode: tables.table("mode").unwrap_or_default(),
        ..Rules::default()
    };
    private::read(tables, &mut rules);
    rules.files = read(tables, rules.mode);
    rules
}

/// Every file rule of a config: one line per rule.
pub fn read(tables: &mut impl Tables, mode: Mode) -> FileRules {
    let mut rules: Vec<Arc<dyn FileRule>> = vec![Arc::new(quarantine::Quarantine)];
    add::<deny::Deny>(tables, mode, &mut rules);
    add::<cooldown::Cooldown>(tables, mode, &mut rules);
    add::<advisories::Advisories>(tables, mode, &mut rules);
    add_or_default::<integrity::Integrity>(tables, mode, &mut rules);
    add::<provenance::Provenance>(tables, mode, &mut rules);
    FileRules::new(rules)
}

/// Some file rules and what they need of a file, shared by every judge made of them.
#[derive(Clone, Debug)]
struct RuleSet {
    rules: Arc<[Arc<dyn FileRule>]>,
    needs: Needs,
    /// Whether a rule decides by data swapped while pages are served (the advisory feed):
    /// only then does a judge pin copies of the rules, on every request.
    pins: bool,
}

impl RuleSet {
    fn new(rules: Vec<Arc<dyn FileRule>>) -> RuleSet {
        let needs = rules.iter().fold(Needs::default(), |n, r| n.or(r.needs()));
        let pins = rules.iter().any(|r| r.feed().is_some());
        RuleSet {
            rules: rules.into(),
            needs,
            pins,
        }
    }
}

/// The file rules of a policy, in the order they are asked, with what a request asks of them
/// worked out once (it is asked on every request).
#[derive(Clone, Debug)]
pub struct FileRules {
    /// Every rule: a public index's files are judged by all of them.
    public: RuleSet,
    /// The rules every index gets (quarantine): a private index's files are yours.
    private: RuleSet,
    /// See [`FileRules::fingerprint`].
    fingerprint: Arc<str>,
    /// Whether a rule's decisions change with the clock.
    uses_clock: bool,
    /// Whether a rule compares downloads with their advertised sha256 (asked per download).
    verifies_digests: bool,
}

impl Default for FileRules {
    fn default() -> FileRules {
        FileRules::new(vec![Arc::new(quarantine::Quarantine)])
    }
}

impl FileRules {
    fn new(rules: Vec<Arc<dyn FileRule>>) -> FileRules {
        let private = rules
            .iter()
            .filter(|r| r.rule() == Rule::Quarantine)
            .cloned()
            .collect();
        FileRules {
            fingerprint: format!("{rules:?}").into(),
            uses_clock: rules.iter().any(|r| r.uses_clock()),
            verifies_digests: rules.iter().any(|r| r.verifies_digests()),
            private: RuleSet::new(private),
            public: RuleSet::new(rules),
        }
    }

    fn of(&self, index: &Index) -> &RuleSet {
        match index.role() {
            Role::Public => &self.public,
            Role::Private => &self.private,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<dyn FileRule>> {
        self.public.rules.iter()
    }

    /// Why no public page or file can be decided at `now`, if so (`/readyz` says it too).
    pub fn unavailable(&self, now: OffsetDateTime) -> Option<Denied> {
        self.first(|r| r.unavailable(now))
    }

    /// The first rule that refuses, by `refuses`, with its reason.
    fn first(&self, refuses: impl Fn(&dyn FileRule) -> Option<String>) -> Option<Denied> {
        self.iter().find_map(|r| {
            refuses(r.as_ref()).map(|reason| Denied {
                rule: r.rule(),
                mode: r.mode(),
                reason,
            })
        })
    }

    /// The advisory feed, when `[policy.advisories]` is configured (the proxy fills it).
    pub fn feed(&self) -> Option<Arc<Feed>> {
        self.iter().find_map(|r| r.feed().cloned())
    }

    /// What the proxy needs to verify provenance, when `[policy.provenance]` verifies.
    pub fn provenance(&self) -> Option<&provenance::Settings> {
        self.iter().find_map(|r| r.provenance())
    }

    /// The configured rules as `config check` prints them.
    pub fn print(&self) -> String {
        self.iter().filter_map(|r| r.print()).collect()
    }

    /// The rules in audit mode (a warning at start names each).
    pub fn audited(&self) -> Vec<&'static str> {
        self.iter()
            .filter(|r| r.mode() == Mode::Audit)
            .map(|r| r.name())
            .collect()
    }

    /// A fingerprint of the rules (a page's ETag includes it: a reload that blocks a version
    /// changes every page it could change).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The name rules and file rules of the `[policy]` config table.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Names that are private whatever the indexes say (`policy.private`).
    pub private: Vec<NamePattern>,
    /// Names that stay allowed on public indexes although private (`policy.allow_public`).
    pub allow_public: Vec<NamePattern>,
    /// Behaviour when a private index cannot answer.
    pub on_private_index_error: OnPrivateIndexError,
    /// `[policy] mode`, the default of every rule's own.
    pub mode: Mode,
    /// The rules that decide about files (and denied names).
    pub files: FileRules,
}

impl Rules {
    /// `[policy]`'s own keys of the rules (the name rules' and `mode`) as `pipgate config
    /// check` prints them.
    pub fn print_keys(&self) -> String {
        let mode = toml_string(self.mode.as_str());
        format!("{}mode = {mode}\n", private::print(self))
    }

    /// The file rules' judge of the files of `project` on `index` at `now`. A private index's
    /// files are judged only by the rules every index gets (quarantine): they are yours.
    pub fn judge(&self, index: &Index, project: &Name, now: OffsetDateTime) -> Judge {
        Judge::new(self.files.of(index), project, now)
    }

    /// Why the whole of `name` is refused on `index`, if a rule refuses it (public indexes
    /// only: a private index's names are its own).
    pub fn denied(&self, index: &Index, name: &Name) -> Option<Denied> {
        if index.role() != Role::Public {
            return None;
        }
        self.files.first(|r| r.denies(name))
    }

    /// Why no public page or file of `index` can be decided at `now` (a rule's data is missing
    /// or stale: 503), if so.
    pub fn unavailable(&self, index: &Index, now: OffsetDateTime) -> Option<Denied> {
        if index.role() != Role::Public {
            return None;
        }
        self.files.unavailable(now)
    }

    /// Why a download from `index` whose bytes have the sha256 `hex` is refused, if a rule
    /// refuses it (public indexes only), given the sha256 the index `advertised` for the file
    /// ([`crate::Policy::advertised_sha256`]).
    pub fn digest_denied(
        &self,
        index: &Index,
        hex: &str,
        advertised: Option<&str>,
    ) -> Option<Denied> {
        if index.role() != Role::Public {
            return None;
        }
        self.files.first(|r| r.denies_digest(hex, advertised))
    }

    /// Whether a rule compares `index`'s downloads with their advertised sha256
    /// (`[policy.integrity]`, on by default for public indexes).
    pub fn verifies_digests(&self, index: &Index) -> bool {
        index.role() == Role::Public && self.files.verifies_digests
    }

    /// What the file rules need on `index`.
    pub fn needs(&self, index: &Index) -> Needs {
        self.files.of(index).needs
    }

    /// Whether a page of `index` depends on the clock (then its ETag cannot be derived).
    pub fn uses_clock(&self, index: &Index) -> bool {
        index.role() == Role::Public && self.files.uses_clock
    }

    /// The `explain` lines of every file rule about `name`.
    pub fn explain(
        &self,
        index: &Index,
        name: &Name,
        files: Option<&[FileRecord]>,
        now: OffsetDateTime,
    ) -> Vec<String> {
        if index.role() != Role::Public {
            return Vec::new();
        }
        self.files
            .iter()
            .flat_map(|r| {
                let mode = match r.mode() {
                    Mode::Audit => " (audit: reported, not enforced)",
                    Mode::Enforce => "",
                };
                r.explain(name, files, now)
                    .into_iter()
                    .map(move |l| format!("{}{mode}: {l}", r.name()))
            })
            .collect()
    }
}

/// The file rules applied to the files of one project page: what every writer asks.
#[derive(Clone, Debug)]
pub struct Judge {
    project: Name,
    rules: Arc<[Arc<dyn FileRule>]>,
    needs: Needs,
    /// Whether a rule reads this project's versions.
    versions: bool,
    now: OffsetDateTime,
    /// What a lookup learnt of the project's files, for a page that does not say (an HTML
    /// page's upload times, from the index's legacy JSON API).
    known: Option<Arc<std::collections::HashMap<String, FileRecord>>>,
}

impl Judge {
    fn new(set: &RuleSet, project: &Name, now: OffsetDateTime) -> Judge {
        let rules = if set.pins {
            set.rules
                .iter()
                .map(|r| r.pinned().unwrap_or_else(|| Arc::clone(r)))
                .collect()
        } else {
            Arc::clone(&set.rules)
        };
        let versions = set.needs.version && rules.iter().any(|r| r.versions_of(project));
        Judge {
            project: project.clone(),
            rules,
            needs: set.needs,
            versions,
            now,
            known: None,
        }
    }

    /// A judge with only the rules every page gets (quarantine), for tests and private pages.
    pub fn basic(project: &Name) -> Judge {
        Judge::new(
            &FileRules::default().private,
            project,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    /// What its rules need to know about a file.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// The judge, told what a lookup learnt of the project's files: a page that does not give
    /// a file's upload time or hash is judged by these.
    pub fn knowing(mut self, files: &[FileRecord]) -> Judge {
        let map = files
            .iter()
            .map(|f| (f.filename.clone(), f.clone()))
            .collect();
        self.known = Some(Arc::new(map));
        self
    }

    /// The project.
    pub fn project(&self) -> &Name {
        &self.project
    }

    /// The first enforcing rule that withholds `file`, else the first audit rule that would.
    /// The version, when a rule needs it, is read from the file name as a file of the project.
    pub fn file(&self, file: &FileFacts<'_>) -> Option<Withheld> {
        let filled;
        let file = match self.known.as_ref().map(|k| k.get(file.filename)) {
            Some(Some(k))
                if file.upload_time.is_none()
                    || file.sha256.is_none()
                    || k.attestation.is_some() =>
            {
                let sha256 = file.sha256.or(k.sha256.as_deref());
                // An attestation was verified for the listing's digest: it speaks for this
                // file only if the page advertises the same one.
                let same = match (sha256, k.sha256.as_deref()) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                };
                filled = FileFacts {
                    upload_time: file.upload_time.or(k.upload_time.as_deref()),
                    sha256,
                    provenance: file.provenance.or(k.provenance.as_deref()),
                    attestation: file.attestation.or(k.attestation.as_ref().filter(|_| same)),
                    ..*file
                };
                &filled
            }
            // The page offers a file the lookup's listing did not have.
            Some(None) if file.upload_time.is_none() => {
                filled = FileFacts {
                    unlisted: true,
                    ..*file
                };
                &filled
            }
            _ => file,
        };
        let parsed = if self.versions {
            crate::filename::version_of(file.filename, &self.project)
                .and_then(|v| v.parse::<Version>().ok())
        } else {
            None
        };
        let mut audit = None;
        for r in self.rules.iter() {
            let Some((rule, reason)) = r.judge(&self.project, file, parsed.as_ref(), self.now)
            else {
                continue;
            };
            let w = Withheld {
                rule,
                mode: r.mode(),
                reason,
            };
            match w.mode {
                Mode::Enforce => return Some(w),
                Mode::Audit => {
                    audit.get_or_insert(w);
                }
            }
        }
        audit
    }
}

/// Counts of files withheld (or audited), by rule, for one page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(Vec<(Rule, Mode, usize)>);

impl Tally {
    /// Counts one file.
    pub fn add(&mut self, w: &Withheld) {
        match self
            .0
            .iter_mut()
            .find(|(r, m, _)| *r == w.rule && *m == w.mode)
        {
            Some((_, _, n)) => *n += 1,
            None => self.0.push((w.rule, w.mode, 1)),
        }
    }

    /// Files `rule` withheld (enforced).
    pub fn count(&self, rule: Rule) -> usize {
        self.0
            .iter()
            .filter(|(r, m, _)| *r == rule && *m == Mode::Enforce)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Every (rule, mode, count).
    pub fn iter(&self) -> impl Iterator<Item = (Rule, Mode, usize)> + '_ {
        self.0.iter().copied()
    }

    /// Files kept from the client (enforced withholdings).
    pub fn enforced(&self) -> usize {
        self.0
            .iter()
            .filter(|(_, m, _)| *m == Mode::Enforce)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// The rules that withheld (or would have), for the access line.
    pub fn rules(&self) -> String {
        let mut out = String::new();
        for (r, m, n) in &self.0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(r.as_str());
            if *m == Mode::Audit {
                out.push_str("(audit)");
            }
            out.push_str(&format!(":{n}"));
        }
        out
    }
}

/// A TOML basic string: `config check` prints what a rule was configured with.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of basic strings.
pub(crate) fn toml_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| toml_string(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// A public upload time as RFC 3339, when it reads as one.
pub(crate) fn upload_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    utc(s).or_else(|| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form PyPI writes, read without the general RFC 3339
/// parser (a page has thousands; this costs a fifth of it). Anything else, or a field out of
/// range, is `None`: `time`'s parser decides it. The property test holds the two equal.
fn utc(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[b.len() - 1] == b'Z';
    if !shape {
        return None;
    }
    let digits = |d: &[u8]| {
        d.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            digits(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let two = |at: usize| digits(&b[at..at + 2]).and_then(|n| u8::try_from(n).ok());
    let month = time::Month::try_from(two(5)?).ok()?;
    let year = i32::try_from(digits(&b[..4])?).ok()?;
    let date = time::Date::from_calendar_date(year, month, two(8)?).ok()?;
    let time = time::Time::from_hms_nano(two(11)?, two(14)?, two(17)?, nanos).ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// A time as RFC 3339 (seconds), for messages.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
