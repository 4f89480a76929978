//! Distribution file names as `packaging.utils` parses them (`parse_wheel_filename`,
//! `parse_sdist_filename`): pypi-attestations compares a subject and a file by these parts, so
//! `Foo_Bar-1.0-py3-none-any.whl` attests `foo.bar-1.0.0-py3-none-any.whl` and a wheel's
//! compressed tag sets may come in any order.

use std::collections::BTreeSet;
use std::str::FromStr;

use pep440_rs::Version;

/// The parts of a distribution file name that identify it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DistName {
    Sdist {
        name: String,
        version: Version,
        zip: bool,
    },
    Wheel {
        name: String,
        version: Version,
        build: Option<(u64, String)>,
        tags: BTreeSet<(String, String, String)>,
    },
}

/// `packaging.utils.canonicalize_name`: runs of `-_.` become `-`, lowercase.
fn canonicalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep {
                out.push('-');
                sep = false;
            }
            out.extend(c.to_lowercase());
        }
    }
    if sep {
        out.push('-');
    }
    out
}

impl DistName {
    /// Parses a wheel (`.whl`) or sdist (`.tar.gz`, `.zip`) name; the suffix is case-sensitive.
    pub(crate) fn parse(file: &str) -> Result<DistName, String> {
        if let Some(stem) = file.strip_suffix(".whl") {
            let dashes = stem.matches('-').count();
            if dashes != 4 && dashes != 5 {
                return Err("a wheel name has 4 or 5 dashes".into());
            }
            let parts: Vec<&str> = stem.splitn(dashes - 1, '-').collect();
            let [name, version, rest @ ..] = parts.as_slice() else {
                return Err("not a wheel name".into());
            };
            if name.contains("__")
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
            {
                return Err(format!("invalid project name {name:?}"));
            }
            let version =
                Version::from_str(version).map_err(|_| format!("invalid version {version:?}"))?;
            let (build, tag) = match rest {
                [tag] => (None, *tag),
                [build, tag] => {
                    let digits = build.chars().take_while(char::is_ascii_digit).count();
                    let n = build[..digits]
                        .parse()
                        .map_err(|_| format!("invalid build tag {build:?}"))?;
                    (Some((n, build[digits..].to_string())), *tag)
                }
                _ => return Err("not a wheel name".into()),
            };
            let tag_parts: Vec<&str> = tag.split('-').collect();
            let [interpreters, abis, platforms] = tag_parts.as_slice() else {
                return Err("a wheel tag has three parts".into());
            };
            let mut tags = BTreeSet::new();
            for i in interpreters.split('.') {
                for a in abis.split('.') {
                    for p in platforms.split('.') {
                        tags.insert((i.to_lowercase(), a.to_lowercase(), p.to_lowercase()));
                    }
                }
            }
            Ok(DistName::Wheel {
                name: canonicalize(name),
                version,
                build,
                tags,
            })
        } else {
            let (stem, zip) = if let Some(stem) = file.strip_suffix(".tar.gz") {
                (stem, false)
            } else if let Some(stem) = file.strip_suffix(".zip") {
                (stem, true)
            } else {
                return Err("neither a wheel nor an sdist".into());
            };
            let Some((name, version)) = stem.rsplit_once('-') else {
                return Err("an sdist name has a dash before the version".into());
            };
            let version =
                Version::from_str(version).map_err(|_| format!("invalid version {version:?}"))?;
            Ok(DistName::Sdist {
                name: canonicalize(name),
                version,
                zip,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        DistName::parse(a).unwrap() == DistName::parse(b).unwrap()
    }

    #[test]
    fn names_compare_as_packaging_parses_them() {
        assert!(same(
            "Foo_Bar-1.0-py3-none-any.whl",
            "foo_bar-1.0.0-py3-none-any.whl"
        ));
        assert!(same(
            "spt3g-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "spt3g-1.0-cp310-cp310-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
        ));
        assert!(same("foo.bar-1.0.tar.gz", "Foo-Bar-1.0.0.tar.gz"));
        assert!(!same("foo-1.0.tar.gz", "foo-1.0.zip"));
        assert!(!same("foo-1.0.tar.gz", "foo-1.1.tar.gz"));
        assert!(!same("foo-1.0.tar.gz", "foobar-1.0.tar.gz"));
        assert!(!same(
            "foo-1.0-py3-none-any.whl",
            "foo-1.0-1-py3-none-any.whl"
        ));
        assert!(!same(
            "foo-1.0-py3-none-any.whl",
            "foo-1.0-py2-none-any.whl"
        ));
        assert!(same(
            "foo-1.0-1a-py3-none-any.whl",
            "foo-1.0-1a-py3-none-any.whl"
        ));
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "foo-1.0.whl",
            "foo__bar-1.0-py3-none-any.whl",
            "foo-1.0-x-py3-none-any.whl",
            "foo-notaversion.tar.gz",
            "foo.tar.gz",
            "foo-1.0.TAR.GZ",
            "foo-1.0.egg",
        ] {
            assert!(DistName::parse(bad).is_err(), "{bad}");
        }
    }
}
