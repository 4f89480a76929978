//! The questions the rules ask before they decide (`pipgate_policy::Question`): whether a
//! private index has a name (with positive and negative TTLs), and which files a public index
//! lists for a project, with upload times and hashes (for a direct download the file rules
//! judge; cached for [`FILES_TTL`]). Concurrent askers share one upstream request.
//!
//! A private answer decides whether a public index may be consulted at all, so a failure is
//! never cached as "not found": it is reported to the policy as `Lookup::Failed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use dashmap::DashMap;
use http::{header, Method, Request, StatusCode};
use pipgate_policy::{
    Answer, Ask, Attestation, FileRecord, Index, Lookup, Name, PageFormat, Question,
};

use crate::body;
use crate::budget::PageBudget;
use crate::config::LookupSettings;
use crate::decode;
use crate::provenance::Verifier;
use crate::upstream::Upstream;

/// Accept header for private-index lookups: JSON first, HTML as a fallback.
const ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";

/// Accept header for a public index's files, and for a project page the file rules need the
/// upload times of: PEP 691 JSON, which carries them (PEP 700); HTML only when the index has
/// nothing else.
pub(crate) const ACCEPT_JSON: &str = "application/vnd.pypi.simple.v1+json, text/html;q=0.01";

/// How long a public index's file list is remembered for direct downloads.
pub(crate) const FILES_TTL: Duration = Duration::from_secs(60);

/// Private pages are small; a lookup answer over this is refused.
const MAX_LOOKUP_PAGE: usize = 16 * 1024 * 1024;

#[derive(Debug)]
struct Entry {
    lookup: Lookup,
    expires: Instant,
}

/// The cache of private-index answers, keyed by (index name, normalized project name).
#[derive(Debug)]
pub(crate) struct Lookups {
    cache: DashMap<(String, Name, Ask), Entry>,
    /// Names some private index has, until when: the root-listing filter asks this for every
    /// one of hundreds of thousands of names, so it must be one hash lookup.
    found: DashMap<Name, Instant>,
    /// Lookups under way: concurrent requests for one name share one upstream request, so a
    /// fleet asking at once (a TTL just expired) sends the private index one question.
    inflight: DashMap<(String, Name, Ask), Arc<OnceCell<Lookup>>>,
    settings: LookupSettings,
    /// Lookup pages are read whole: they take their share of the page budget.
    budget: PageBudget,
    /// Answers remembered since expired entries were last swept out (a gateway touches many
    /// projects, and a file listing can be megabytes: what has expired must not stay).
    inserted: std::sync::atomic::AtomicUsize,
    /// With `[policy.provenance]`: every public listing's offered attestations are verified
    /// before it is answered (or remembered).
    verifier: Option<Arc<Verifier>>,
}

/// Every this many answers remembered, expired ones are dropped from the cache.
const SWEEP_EVERY: usize = 256;

impl Lookups {
    pub(crate) fn new(
        settings: LookupSettings,
        budget: PageBudget,
        verifier: Option<Arc<Verifier>>,
    ) -> Lookups {
        Lookups {
            verifier,
            cache: DashMap::new(),
            found: DashMap::new(),
            inflight: DashMap::new(),
            settings,
            budget,
            inserted: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The cached answer, or a fresh one from the index.
    pub(crate) async fn get(
        &self,
        upstream: &Upstream,
        index: &Index,
        name: &Name,
        ask: Ask,
        idle: Duration,
    ) -> Lookup {
        let key = (index.name().to_owned(), name.clone(), ask);
        if let Some(e) = self.cache.get(&key) {
            if e.expires > Instant::now() {
                return e.lookup.clone();
            }
        }
        let cell = self.inflight.entry(key.clone()).or_default().clone();
        let lookup = cell
            .get_or_init(|| async {
                let mut lookup = fetch(upstream, index, name, ask, idle, &self.budget).await;
                // Provenance is a public index's rule: a private listing (asked for the file
                // cache's key) is not attested.
                let public = index.role() == pipgate_policy::Role::Public;
                if let (Lookup::Files(files), Some(v), true) = (&lookup, &self.verifier, public) {
                    let files = v.attest(upstream, name, files.to_vec(), idle).await;
                    lookup = Lookup::Files(files.into());
                }
                self.remember(&key, &lookup);
                lookup
            })
            .await
            .clone();
        // The first finisher clears the slot; later callers found the cell already filled.
        self.inflight.remove_if(&key, |_, c| Arc::ptr_eq(c, &cell));
        lookup
    }

    /// Answers every question (concurrently: a file name with three readings asks three).
    pub(crate) async fn answer<'p>(
        &self,
        upstream: &Upstream,
        questions: Vec<Question<'p>>,
        idle: Duration,
    ) -> Vec<Answer<'p>> {
        let asks = questions.into_iter().map(|q| async move {
            let lookup = self.get(upstream, q.index, &q.name, q.ask, idle).await;
            Answer {
                index: q.index,
                name: q.name,
                lookup,
            }
        });
        futures_util::future::join_all(asks).await
    }

    /// Caches an answer (failures are never cached: the next request asks again).
    fn remember(&self, key: &(String, Name, Ask), lookup: &Lookup) {
        let name = &key.1;
        let ttl = match (key.2, lookup) {
            // An attestation that could not be fetched is asked for again next time.
            (Ask::Files, Lookup::Files(f)) if f.iter().any(unavailable) => None,
            (Ask::Files, Lookup::Files(_) | Lookup::NotFound) => Some(FILES_TTL),
            (Ask::Files, _) => None,
            (_, Lookup::Found { .. }) => Some(self.settings.ttl),
            (_, Lookup::NotFound) => Some(self.settings.negative_ttl),
            _ => None,
        };
        match (lookup, ttl) {
            _ if key.2 == Ask::Files => {}
            (Lookup::Found { .. }, Some(ttl)) => {
                self.found.insert(name.clone(), Instant::now() + ttl);
            }
            (Lookup::NotFound, _) => {
                self.found.remove(name);
            }
            _ => {}
        }
        if let Some(ttl) = ttl {
            self.cache.insert(
                key.clone(),
                Entry {
                    lookup: lookup.clone(),
                    expires: Instant::now() + ttl,
                },
            );
            self.sweep_now_and_then();
        }
    }

    /// Drops expired answers, once every [`SWEEP_EVERY`] answers remembered.
    fn sweep_now_and_then(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.inserted.fetch_add(1, Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let now = Instant::now();
        self.cache.retain(|_, e| e.expires > now);
        self.found.retain(|_, until| *until > now);
    }

    /// How many answers are remembered (tests).
    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The names some private index is known (from the cache) to have, now: a root listing
    /// strips them without asking about every name in it. A copy, so the listing's hundreds of
    /// thousands of checks take no lock (and none at all when nothing is known).
    pub(crate) fn known_private(&self) -> KnownPrivate {
        let now = Instant::now();
        KnownPrivate(
            self.found
                .iter()
                .filter(|e| *e.value() > now)
                .map(|e| e.key().clone())
                .collect(),
        )
    }
}

fn unavailable(f: &FileRecord) -> bool {
    matches!(f.attestation, Some(Attestation::Unavailable(_)))
}

/// A snapshot of the names private indexes are known to have (see [`Lookups::known_private`]).
#[derive(Debug, Default)]
pub(crate) struct KnownPrivate(std::collections::HashSet<Name>);

impl KnownPrivate {
    pub(crate) fn contains(&self, name: &Name) -> bool {
        !self.0.is_empty() && self.0.contains(name)
    }
}

async fn fetch(
    upstream: &Upstream,
    index: &Index,
    name: &Name,
    ask: Ask,
    idle: Duration,
    budget: &PageBudget,
) -> Lookup {
    let url = index.project_url(name);
    let accept = match ask {
        Ask::Private => ACCEPT,
        Ask::Files => ACCEPT_JSON,
    };
    let get = Get {
        upstream,
        index,
        idle,
        budget,
    };
    let (format, body) = match get.page(&url, accept).await {
        Ok(Some(page)) => page,
        Ok(None) => return Lookup::NotFound,
        Err(why) => return Lookup::Failed(why),
    };
    if ask == Ask::Files {
        return files(&get, name, &url, format, &body).await;
    }
    // A 200 means the private index has the name; PEP 708 tracks only widen what is allowed,
    // so a page whose tracks cannot be read still counts as found (with no tracks).
    let tracks = format
        .and_then(|f| pipgate_policy::private_page_tracks(f, &url, &body).ok())
        .unwrap_or_default();
    Lookup::Found { tracks }
}

/// The files a public project page lists. An HTML page carries no upload times: they come
/// from the index's legacy JSON API (`/pypi/<name>/json`) when it has one.
async fn files(
    get: &Get<'_>,
    name: &Name,
    url: &url::Url,
    format: Option<PageFormat>,
    body: &[u8],
) -> Lookup {
    let index = get.index;
    let Some(format) = format else {
        return Lookup::Failed(format!(
            "{} answered {url} with no index page",
            index.name()
        ));
    };
    let files = match pipgate_policy::files_of_page(index, url, format, body) {
        Ok(files) => files,
        Err(e) => return Lookup::Failed(format!("{}: {url}: {e}", index.name())),
    };
    if format == PageFormat::JsonV1 || files.iter().all(|f| f.upload_time.is_some()) {
        return Lookup::Files(files.into());
    }
    let legacy_url = index.url().join(&format!("/pypi/{name}/json"));
    let legacy = match legacy_url {
        Ok(u) => get.page(&u, "application/json").await,
        Err(e) => Err(e.to_string()),
    };
    // Without the legacy API the upload times stay unknown (`on_unknown_upload_time`).
    match legacy {
        Ok(Some((_, doc))) => match pipgate_policy::files_of_legacy_json(&doc) {
            Ok(times) => Lookup::Files(pipgate_policy::with_legacy_times(files, &times).into()),
            Err(_) => Lookup::Files(files.into()),
        },
        _ => Lookup::Files(files.into()),
    }
}

/// GETs of an index's pages, read whole within the page budget.
struct Get<'a> {
    upstream: &'a Upstream,
    index: &'a Index,
    idle: Duration,
    budget: &'a PageBudget,
}

impl Get<'_> {
    /// `url`'s page format and body; `None` for a 404 or 410; the reason otherwise.
    async fn page(
        &self,
        url: &url::Url,
        accept: &str,
    ) -> Result<Option<(Option<PageFormat>, Vec<u8>)>, String> {
        let name = self.index.name();
        let req = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(header::ACCEPT, accept)
            .header(header::ACCEPT_ENCODING, crate::decode::ACCEPT_ENCODINGS)
            .header(
                header::USER_AGENT,
                concat!("pipgate/", env!("CARGO_PKG_VERSION")),
            )
            .body(body::empty())
            .map_err(|e| format!("bad lookup URL {url}: {e}"))?;
        let resp = self
            .upstream
            .send(req)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{name} answered {status} for {url}"));
        }
        let format = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(PageFormat::from_content_type);
        let (parts, incoming) = resp.into_parts();
        let mut share = self.budget.share();
        let read = decode::read_decoded(
            &parts.headers,
            crate::body::stream(incoming),
            MAX_LOOKUP_PAGE,
            self.idle,
            &mut share,
        );
        let body = read.await.map_err(|e| format!("{name}: {e}"))?;
        Ok(Some((format, body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_answers_do_not_pile_up() {
        let settings = LookupSettings {
            ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
        };
        let lookups = Lookups::new(settings, PageBudget::new(1 << 20), None);
        for i in 0..SWEEP_EVERY * 4 {
            let key = ("corp".to_owned(), Name::new(&format!("p{i}")), Ask::Private);
            lookups.remember(&key, &Lookup::NotFound);
        }
        // Each sweep empties what has expired: at most one sweep's worth is left.
        assert!(lookups.cached() < SWEEP_EVERY, "{}", lookups.cached());
        let kept = LookupSettings {
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(300),
        };
        let lookups = Lookups::new(kept, PageBudget::new(1 << 20), None);
        for i in 0..SWEEP_EVERY * 2 {
            let key = ("corp".to_owned(), Name::new(&format!("p{i}")), Ask::Private);
            lookups.remember(&key, &Lookup::NotFound);
        }
        assert_eq!(lookups.cached(), SWEEP_EVERY * 2);
    }
}
