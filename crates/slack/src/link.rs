//! Where a message's links point: the commit on the images repository's
//! host and the AMI in the EC2 console. A link is made only of validated
//! parts, so nothing from an announcement can break out of mrkdwn's
//! `<url|text>` or point somewhere else.

/// Where a commit is shown to people: the images repository's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryLink {
    /// A CodeCommit repository in the announcement's region.
    CodeCommit { repository: String },
    /// `github.com/<owner>/<name>`.
    GitHub { owner: String, name: String },
}

impl RepositoryLink {
    /// A CodeCommit repository name: 1–100 letters, digits, `.`, `_`, `-`.
    pub fn codecommit(repository: &str) -> Result<Self, String> {
        if is_codecommit_name(repository) {
            Ok(RepositoryLink::CodeCommit {
                repository: repository.to_owned(),
            })
        } else {
            Err("not a CodeCommit repository name (1-100 letters, digits, `.`, `_`, `-`)".into())
        }
    }

    /// A GitHub repository as `owner/name`.
    pub fn github(full_name: &str) -> Result<Self, String> {
        let (owner, name) = full_name
            .split_once('/')
            .ok_or_else(|| "expected `owner/name`".to_owned())?;
        if !is_github_owner(owner) {
            return Err(format!(
                "`{owner}` is not a GitHub owner (1-39 letters, digits, `-`)"
            ));
        }
        if !is_github_name(name) {
            return Err(format!(
                "`{name}` is not a GitHub repository name (1-100 letters, digits, `.`, `_`, `-`)"
            ));
        }
        Ok(RepositoryLink::GitHub {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The web page of `commit`; `None` when the commit (or region, for
    /// CodeCommit) is not something a link can safely be made of.
    pub fn commit_url(&self, region: &str, commit: &str) -> Option<String> {
        if !is_commit(commit) {
            return None;
        }
        match self {
            RepositoryLink::CodeCommit { repository }
                if is_codecommit_name(repository) && is_region(region) =>
            {
                Some(format!(
                    "https://{region}.console.aws.amazon.com/codesuite/codecommit/repositories/{repository}/commit/{commit}?region={region}"
                ))
            }
            RepositoryLink::GitHub { owner, name } if is_github_owner(owner) && is_github_name(name) => {
                Some(format!("https://github.com/{owner}/{name}/commit/{commit}"))
            }
            _ => None,
        }
    }
}

/// The AMI's page in the EC2 console.
pub fn ec2_console_url(region: &str, image: &str) -> Option<String> {
    (is_region(region) && is_ami(image)).then(|| {
        format!("https://{region}.console.aws.amazon.com/ec2/home?region={region}#ImageDetails:imageId={image}")
    })
}

fn is_commit(commit: &str) -> bool {
    (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_ami(image: &str) -> bool {
    image.strip_prefix("ami-").is_some_and(|hex| {
        (8..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn is_codecommit_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_github_owner(owner: &str) -> bool {
    (1..=39).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_github_name(name: &str) -> bool {
    is_codecommit_name(name) && name != "." && name != ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_body;
    use crate::testdata::{codecommit, github, promoted, SHA};
    use serde_json::json;

    #[test]
    fn commit_links_follow_the_repository_host() {
        assert_eq!(
            codecommit().commit_url("eu-west-1", SHA).as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/gild-images/commit/a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1?region=eu-west-1")
        );
        assert_eq!(
            github().commit_url("eu-west-1", SHA).as_deref(),
            Some("https://github.com/example-org/gild-images/commit/a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1")
        );
        // Nothing that could break out of `<url|text>` becomes a link.
        assert_eq!(codecommit().commit_url("us-east-1", "main|evil>"), None);
        assert_eq!(codecommit().commit_url("us-east-1/x", SHA), None);
        let sneaky = RepositoryLink::GitHub {
            owner: "a|b".into(),
            name: "c".into(),
        };
        assert_eq!(sneaky.commit_url("us-east-1", SHA), None);

        let mut body = promoted().json();
        body["commit"] = json!("not|a>sha");
        let payload = render_body(&body.to_string(), &github())
            .expect("renders")
            .to_json();
        let fields = payload["blocks"][1]["fields"].to_string();
        assert!(fields.contains("*Commit*\\n`not|a&gt;sha`"), "{fields}");

        assert!(RepositoryLink::github("owner").is_err());
        assert!(RepositoryLink::github("own er/x").is_err());
        assert!(RepositoryLink::github("o/..").is_err());
        assert!(RepositoryLink::codecommit("a/b").is_err());
        assert!(RepositoryLink::codecommit("").is_err());
    }
}
