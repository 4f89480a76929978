//! The legacy JSON API (`/pypi/<name>/json`): metadata kept, file entries filtered by the link
//! rule.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::{link, Rewritten};
use crate::{Index, RewriteError};

#[derive(Deserialize, Serialize)]
struct Legacy {
    info: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_serial: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vulnerabilities: Option<Value>,
    urls: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    releases: Option<Map<String, Value>>,
}

pub(crate) fn rewrite(
    index: &Index,
    page_url: &Url,
    body: &[u8],
) -> Result<Rewritten, RewriteError> {
    let mut doc: Legacy = serde_json::from_slice(body)?;
    let (mut kept, mut dropped) = (0, 0);
    let mut filter = |entries: Vec<Value>| -> Result<Vec<Value>, RewriteError> {
        let mut out = Vec::with_capacity(entries.len());
        for mut e in entries {
            let obj = e
                .as_object_mut()
                .ok_or_else(|| RewriteError::Json("file entry is not an object".to_owned()))?;
            let url = obj
                .get("url")
                .and_then(Value::as_str)
                .and_then(|u| link::resolve(page_url, u))
                .filter(|u| link::allowed(index, u) && link::filename(u).is_some());
            match url {
                Some(u) => {
                    obj.insert("url".to_owned(), Value::String(u.into()));
                    out.push(e);
                    kept += 1;
                }
                None => dropped += 1,
            }
        }
        Ok(out)
    };
    doc.urls = filter(std::mem::take(&mut doc.urls))?;
    if let Some(releases) = doc.releases.as_mut() {
        for (version, files) in releases.iter_mut() {
            let Value::Array(list) = std::mem::take(files) else {
                return Err(RewriteError::Json(format!(
                    "releases entry {:?} is not an array",
                    version
                        .chars()
                        .filter(|c| !c.is_control())
                        .collect::<String>()
                )));
            };
            *files = Value::Array(filter(list)?);
        }
    }
    let body = serde_json::to_vec(&doc)?;
    Ok(Rewritten {
        body,
        content_type: "application/json",
        kept,
        dropped,
    })
}
