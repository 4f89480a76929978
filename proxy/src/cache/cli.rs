//! `pipgate cache stats` and `pipgate cache purge [NAME]`: the cache directory of a config,
//! read (and, for purge, changed) directly. A running pipgate may share the directory: what
//! is purged under it is found missing at its next request and fetched again.

use std::path::Path;
use std::process::ExitCode;

use super::Cache;

fn open(config: Option<&Path>) -> Result<(Cache, std::path::PathBuf), ExitCode> {
    let config = crate::cli::load(config)?;
    let Some(dir) = config.cache.dir.clone() else {
        eprintln!("pipgate: no [cache] dir is configured");
        return Err(ExitCode::FAILURE);
    };
    match Cache::open_existing(&dir, config.cache.max_size.0) {
        Ok(cache) => Ok((cache, dir)),
        Err(e) => {
            eprintln!("pipgate: cannot open the cache {}: {e}", dir.display());
            Err(ExitCode::FAILURE)
        }
    }
}

/// `cache stats`: the directory, its files and bytes against `max_size`, per project.
pub(crate) fn stats(config: Option<&Path>) -> ExitCode {
    let (cache, dir) = match open(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (files, bytes, max) = cache.size();
    println!("dir = {}", dir.display());
    println!("files = {files}");
    println!("size_bytes = {bytes}");
    println!("max_size_bytes = {max}");
    let (pages, page_bytes) = cache.pages.stats();
    println!("pages = {pages}");
    println!("page_size_bytes = {page_bytes}");
    for (name, files, bytes) in cache.projects() {
        println!("{name}\t{files} files\t{bytes} bytes");
    }
    ExitCode::SUCCESS
}

/// `cache purge [NAME]`: every file and page, or those of the project `name` (any spelling).
pub(crate) fn purge(config: Option<&Path>, name: Option<&str>) -> ExitCode {
    let (cache, _) = match open(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let name = name.map(pipgate_policy::Name::new);
    let name = name.as_ref().map(pipgate_policy::Name::as_str);
    let (files, bytes) = cache.purge(name);
    let (pages, page_bytes) = cache.purge_pages(name);
    println!("purged {files} files ({bytes} bytes) and {pages} pages ({page_bytes} bytes)");
    ExitCode::SUCCESS
}
