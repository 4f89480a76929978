//! PEP 740 Trusted Publishers, and the policy that ties a Fulcio certificate to one: the same
//! checks pypi-attestations applies (`_GitHubTrustedPublisherPolicy` and its siblings).

use serde::{Deserialize, Serialize};

use crate::cert::Claims;
use crate::Error;

/// A Trusted Publisher as a provenance object names it. One flat shape for every kind; the
/// fields a kind does not use are `None`. GitLab's `workflow_filepath` is read into `workflow`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    /// `GitHub`, `GitLab`, `Google` or `CircleCI` (others are refused when verifying).
    pub kind: String,
    /// GitHub `owner/repo`, GitLab `namespace/project` (subgroups included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// GitHub workflow file name (`publish.yml`); GitLab CI file path (`.gitlab-ci.yml`).
    #[serde(
        default,
        alias = "workflow_filepath",
        skip_serializing_if = "Option::is_none"
    )]
    pub workflow: Option<String>,
    /// The CI environment PyPI saw at upload. Not bound by the certificate (Fulcio has no
    /// claim for it), so it is shown but never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Google: the service account's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// CircleCI: project id (UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// CircleCI: pipeline definition id (UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_definition_id: Option<String>,
    /// CircleCI: `github.com/org/repo`, when the pipeline was triggered from a VCS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcs_origin: Option<String>,
    /// CircleCI: `refs/heads/main`, when the pipeline was triggered from a VCS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcs_ref: Option<String>,
}

impl std::fmt::Display for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        match self.kind.as_str() {
            "GitHub" => write!(
                f,
                "github.com/{} ({})",
                or(&self.repository),
                or(&self.workflow)
            ),
            "GitLab" => write!(
                f,
                "gitlab.com/{} ({})",
                or(&self.repository),
                or(&self.workflow)
            ),
            "Google" => write!(f, "{} (Google)", or(&self.email)),
            "CircleCI" => write!(
                f,
                "circleci.com project {} (pipeline {})",
                or(&self.project_id),
                or(&self.pipeline_definition_id)
            ),
            kind => write!(f, "{kind} publisher"),
        }
    }
}

impl Publisher {
    /// A GitHub Actions publisher: `owner/repo` and the workflow file name.
    pub fn github(repository: &str, workflow: &str) -> Publisher {
        Publisher {
            repository: Some(repository.into()),
            workflow: Some(workflow.into()),
            ..Publisher::kind("GitHub")
        }
    }

    /// A GitLab CI publisher: `namespace/project` and the CI file path.
    pub fn gitlab(repository: &str, workflow_filepath: &str) -> Publisher {
        Publisher {
            repository: Some(repository.into()),
            workflow: Some(workflow_filepath.into()),
            ..Publisher::kind("GitLab")
        }
    }

    /// A Google Cloud publisher: the service account's email.
    pub fn google(email: &str) -> Publisher {
        Publisher {
            email: Some(email.into()),
            ..Publisher::kind("Google")
        }
    }

    fn kind(kind: &str) -> Publisher {
        Publisher {
            kind: kind.into(),
            repository: None,
            workflow: None,
            environment: None,
            email: None,
            project_id: None,
            pipeline_definition_id: None,
            vcs_origin: None,
            vcs_ref: None,
        }
    }

    /// Whether `other` is the same publisher, as a pin compares them: the kind and every claim
    /// the certificate binds (repository and workflow, email, CircleCI ids). Repository and
    /// email compare ASCII case-insensitively (GitHub, GitLab and Google treat them so); the
    /// environment is not compared (nothing signed carries it).
    pub fn same_publisher(&self, other: &Publisher) -> bool {
        fn ci(a: &Option<String>, b: &Option<String>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (None, None) => true,
                _ => false,
            }
        }
        self.kind == other.kind
            && ci(&self.repository, &other.repository)
            && self.workflow == other.workflow
            && ci(&self.email, &other.email)
            && self.project_id == other.project_id
            && self.pipeline_definition_id == other.pipeline_definition_id
            && self.vcs_origin == other.vcs_origin
            && self.vcs_ref == other.vcs_ref
    }

    /// Checks that the certificate's claims are this publisher's, as pypi-attestations does.
    pub(crate) fn check(&self, claims: &Claims<'_>) -> Result<(), Error> {
        let fail = |detail: String| Error::Publisher {
            publisher: self.to_string(),
            detail,
        };
        let need = |field: &Option<String>, name: &str| {
            field
                .clone()
                .ok_or_else(|| Error::Malformed(format!("{} publisher without {name}", self.kind)))
        };
        let expect = |oid: &'static str, name: &str, want: &str| -> Result<(), Error> {
            match claims.v2(oid)? {
                Some(got) if got == want => Ok(()),
                Some(got) => Err(fail(format!("{name} is {got:?}, expected {want:?}"))),
                None => Err(fail(format!("certificate has no {name}"))),
            }
        };
        match self.kind.as_str() {
            "GitHub" | "GitLab" => {
                let repo = need(&self.repository, "repository")?;
                let workflow = need(&self.workflow, "workflow")?;
                let (issuer, host, sep) = if self.kind == "GitHub" {
                    (
                        "https://token.actions.githubusercontent.com",
                        "github.com",
                        "/.github/workflows/",
                    )
                } else {
                    ("https://gitlab.com", "gitlab.com", "//")
                };
                expect(oid::ISSUER_V2, "OIDC issuer", issuer)?;
                expect(
                    oid::SOURCE_REPOSITORY_URI,
                    "source repository",
                    &format!("https://{host}/{repo}"),
                )?;
                let Some(build_config) = claims.v2(oid::BUILD_CONFIG_URI)? else {
                    return Err(fail("certificate has no build config URI".into()));
                };
                let digest = claims.v2(oid::SOURCE_REPOSITORY_DIGEST)?;
                let git_ref = claims.v2(oid::SOURCE_REPOSITORY_REF)?;
                // GitHub needs one of digest and ref; pypi-attestations' GitLab policy needs both.
                let suffixes: Vec<&str> = match (self.kind.as_str(), digest, git_ref) {
                    ("GitLab", Some(d), Some(r)) => vec![d, r],
                    ("GitLab", _, _) => {
                        return Err(fail(
                            "certificate lacks source repository digest or ref".into(),
                        ));
                    }
                    (_, d, r) => d.into_iter().chain(r).collect(),
                };
                if suffixes.is_empty() {
                    return Err(fail(
                        "certificate has neither source repository digest nor ref".into(),
                    ));
                }
                let prefix = format!("https://{host}/{repo}{sep}{workflow}@");
                if suffixes
                    .iter()
                    .any(|s| build_config.strip_prefix(&prefix) == Some(s))
                {
                    Ok(())
                } else {
                    Err(fail(format!(
                        "build config URI {build_config:?} is not {workflow} of {repo}"
                    )))
                }
            }
            "Google" => {
                let email = need(&self.email, "email")?;
                match claims.v1(oid::ISSUER_V1)? {
                    Some("https://accounts.google.com") => {}
                    Some(got) => {
                        return Err(fail(format!(
                            "OIDC issuer is {got:?}, expected \"https://accounts.google.com\""
                        )));
                    }
                    None => return Err(fail("certificate has no OIDC issuer".into())),
                }
                if claims.sans()?.iter().any(|s| *s == email) {
                    Ok(())
                } else {
                    Err(fail(format!("certificate is not issued to {email}")))
                }
            }
            "CircleCI" => {
                let project = need(&self.project_id, "project_id")?;
                let pipeline = need(&self.pipeline_definition_id, "pipeline_definition_id")?;
                expect(oid::ISSUER_V2, "OIDC issuer", "https://oidc.circleci.com")?;
                if let Some(origin) = &self.vcs_origin {
                    expect(oid::SOURCE_REPOSITORY_URI, "source repository", origin)?;
                }
                if let Some(r) = &self.vcs_ref {
                    expect(oid::SOURCE_REPOSITORY_REF, "source repository ref", r)?;
                }
                expect(
                    oid::BUILD_SIGNER_URI,
                    "build signer URI",
                    &format!(
                        "https://circleci.com/api/v2/projects/{project}/pipeline-definitions/{pipeline}"
                    ),
                )
            }
            kind => Err(Error::UnsupportedPublisher(kind.into())),
        }
    }
}

/// Fulcio's certificate extensions (sigstore/fulcio docs/oid-info.md).
pub(crate) mod oid {
    /// OIDC issuer, raw bytes (deprecated form, still what the Google policy checks).
    pub(crate) const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
    /// OIDC issuer, DER UTF8String.
    pub(crate) const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
    pub(crate) const BUILD_SIGNER_URI: &str = "1.3.6.1.4.1.57264.1.9";
    pub(crate) const SOURCE_REPOSITORY_URI: &str = "1.3.6.1.4.1.57264.1.12";
    pub(crate) const SOURCE_REPOSITORY_DIGEST: &str = "1.3.6.1.4.1.57264.1.13";
    pub(crate) const SOURCE_REPOSITORY_REF: &str = "1.3.6.1.4.1.57264.1.14";
    pub(crate) const BUILD_CONFIG_URI: &str = "1.3.6.1.4.1.57264.1.18";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_as_pypi_serves_it_and_round_trips() {
        let gitlab: Publisher = serde_json::from_str(
            r#"{"kind":"GitLab","repository":"ns/sub/p","workflow_filepath":".gitlab-ci.yml","environment":null}"#,
        )
        .unwrap();
        assert_eq!(gitlab, Publisher::gitlab("ns/sub/p", ".gitlab-ci.yml"));
        assert_eq!(gitlab.to_string(), "gitlab.com/ns/sub/p (.gitlab-ci.yml)");
        let github: Publisher = serde_json::from_str(
            r#"{"kind":"GitHub","repository":"psf/requests","workflow":"publish.yml","environment":"pypi","claims":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(github.environment.as_deref(), Some("pypi"));
        assert_eq!(github.to_string(), "github.com/psf/requests (publish.yml)");
        // What a pin stores: only the fields that are set.
        let json = serde_json::to_string(&github).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"GitHub","repository":"psf/requests","workflow":"publish.yml","environment":"pypi"}"#
        );
        assert_eq!(serde_json::from_str::<Publisher>(&json).unwrap(), github);
        let google = Publisher::google("a@b.iam.gserviceaccount.com");
        assert_eq!(google.to_string(), "a@b.iam.gserviceaccount.com (Google)");
        assert!(serde_json::from_str::<Publisher>(r#"{"repository":"a/b"}"#).is_err());
    }

    #[test]
    fn same_publisher_compares_what_the_certificate_binds() {
        let a = Publisher::github("psf/requests", "publish.yml");
        assert!(a.same_publisher(&Publisher::github("PSF/Requests", "publish.yml")));
        assert!(a.same_publisher(&Publisher {
            environment: Some("release".into()),
            ..a.clone()
        }));
        assert!(!a.same_publisher(&Publisher::github("psf/requests", "Publish.yml")));
        assert!(!a.same_publisher(&Publisher::github("evil/requests", "publish.yml")));
        assert!(!a.same_publisher(&Publisher::gitlab("psf/requests", "publish.yml")));
        assert!(!a.same_publisher(&Publisher::google("psf@example.com")));
        let g = Publisher::google("a@example.com");
        assert!(g.same_publisher(&Publisher::google("A@Example.com")));
    }
}
