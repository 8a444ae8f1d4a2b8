//! Throw-away git repositories for tests, so CodeCommit commit ids, blob ids
//! and diffs in tests are real git objects rather than invented strings.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::HarnessError;

/// Environment that keeps a developer's global git setup (hooks, signing,
/// templates, pagers) from changing what the harness sees.
pub(crate) const GIT_ENV: [(&str, &str); 4] = [
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
    ("LC_ALL", "C"),
];

/// A git repository in a temporary directory, deleted on drop.
pub struct TestRepo {
    dir: TempDir,
}

impl TestRepo {
    /// `git init -b main` with a local identity, so commits work on machines
    /// (CI) that have no global git identity.
    pub fn new() -> Result<TestRepo, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("gild-repo-")
            .tempdir()
            .map_err(|e| HarnessError::io("cannot create a temporary git repository", e))?;
        let repo = TestRepo { dir };
        repo.git(&["init", "-q", "-b", "main"])?;
        for (key, value) in [
            ("user.name", "Gild Tests"),
            ("user.email", "gild-tests@example.invalid"),
            ("commit.gpgsign", "false"),
            ("tag.gpgsign", "false"),
            ("core.autocrlf", "false"),
            ("core.hooksPath", "/dev/null"),
        ] {
            repo.git(&["config", key, value])?;
        }
        Ok(repo)
    }

    /// An images repository: `catalog` as `gild.toml`, a template stub in
    /// `images/<family>/` for each of `families`, and `extra` (path, text)
    /// files, in one first commit. Returns the repository and the commit.
    /// This project's own images as a repository of their own: `gild.toml`,
    /// `images/`, `ansible/`, `buildspecs/` and `consumers/` as the working
    /// tree holds them, in one commit (returned), as a user's images
    /// repository is laid out. The real buildspecs run on it.
    pub fn of_this_project() -> Result<(TestRepo, String), HarnessError> {
        let repo = TestRepo::new()?;
        let root = crate::workspace_root();
        let catalog = std::fs::read_to_string(root.join("gild.toml"))
            .map_err(|e| HarnessError::io("reading gild.toml", e))?;
        repo.write("gild.toml", &catalog)?;
        // The files git tracks there, copied: a user's repository holds
        // them as files, and the buildspecs and the SSM stand-in read them.
        let listed = run_git_sync(
            &root,
            &[
                "ls-files",
                "-z",
                "images",
                "ansible",
                "buildspecs",
                "consumers",
            ],
        )?;
        for path in String::from_utf8_lossy(&listed.stdout).split('\0') {
            if path.is_empty() {
                continue;
            }
            let bytes = std::fs::read(root.join(path))
                .map_err(|e| HarnessError::io(format!("reading {path}"), e))?;
            repo.write(path, bytes)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(root.join(path))
                    .map_err(|e| HarnessError::io(format!("reading {path}"), e))?
                    .permissions()
                    .mode();
                std::fs::set_permissions(
                    repo.path().join(path),
                    std::fs::Permissions::from_mode(mode),
                )
                .map_err(|e| HarnessError::io(format!("chmod {path}"), e))?;
            }
        }
        repo.write("README.md", "# platform images\n")?;
        let first = repo.commit("images as code")?;
        Ok((repo, first))
    }

    pub fn images(
        catalog: &str,
        families: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<(TestRepo, String), HarnessError> {
        let repo = TestRepo::new()?;
        repo.write("gild.toml", catalog)?;
        for family in families {
            repo.write(&format!("images/{family}/{family}.pkr.hcl"), "# packer\n")?;
        }
        for (path, text) in extra {
            repo.write(path, text)?;
        }
        let first = repo.commit("initial")?;
        Ok((repo, first))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parent directories) relative to the work tree.
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<(), HarnessError> {
        let full = self.resolve(path)?;
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                HarnessError::io(format!("cannot create directory {}", parent.display()), e)
            })?;
        }
        std::fs::write(&full, contents)
            .map_err(|e| HarnessError::io(format!("cannot write {}", full.display()), e))
    }

    /// Deletes a file or directory from the work tree; the next `commit`
    /// records the deletion.
    pub fn remove(&self, path: &str) -> Result<(), HarnessError> {
        let full = self.resolve(path)?;
        let result = if full.is_dir() {
            std::fs::remove_dir_all(&full)
        } else {
            std::fs::remove_file(&full)
        };
        result.map_err(|e| HarnessError::io(format!("cannot remove {}", full.display()), e))
    }

    /// Commits every change in the work tree (empty commits allowed) on the
    /// current branch and returns the new commit id.
    pub fn commit(&self, message: &str) -> Result<String, HarnessError> {
        self.git(&["add", "-A"])?;
        self.git(&[
            "commit",
            "-q",
            "--allow-empty",
            "--no-verify",
            "-m",
            message,
        ])?;
        self.rev_parse("HEAD")
    }

    /// The commit id `refs/heads/<name>` points at.
    pub fn branch_tip(&self, name: &str) -> Result<String, HarnessError> {
        self.rev_parse(&format!("refs/heads/{name}"))
    }

    /// Creates branch `name` at the current commit without switching to it.
    pub fn create_branch(&self, name: &str) -> Result<(), HarnessError> {
        self.git(&["branch", "--", name]).map(drop)
    }

    /// Switches the work tree to an existing branch.
    pub fn checkout(&self, name: &str) -> Result<(), HarnessError> {
        self.git(&["checkout", "-q", name, "--"]).map(drop)
    }

    /// Runs any other git command in the repository and returns its stdout.
    pub fn git(&self, args: &[&str]) -> Result<String, HarnessError> {
        let output = run_git_sync(self.path(), args)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn rev_parse(&self, rev: &str) -> Result<String, HarnessError> {
        Ok(self
            .git(&["rev-parse", "--verify", "--end-of-options", rev])?
            .trim()
            .to_string())
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, HarnessError> {
        let relative = Path::new(path);
        // Tests must never write outside the temporary repository.
        let stays_inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if path.is_empty() || !stays_inside {
            return Err(HarnessError::InvalidInput {
                message: format!("`{path}` is not a relative path inside the test repository"),
            });
        }
        Ok(self.path().join(relative))
    }
}

fn run_git_sync(dir: &Path, args: &[&str]) -> Result<Output, HarnessError> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(GIT_ENV)
        .output()
        .map_err(|e| HarnessError::io("cannot run `git` (is it installed?)", e))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(HarnessError::Git {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}
