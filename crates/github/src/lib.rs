//! gild's ports over GitHub's REST API: the images repository
//! ([`GitHubRepository`], the same `Repository` port the CodeCommit adapter
//! implements, so the planner and the trigger do not care where the images
//! live) and where pull requests are reviewed ([`GitHubReviews`]: commit
//! statuses, one comment, the files a pull request changes). Both read the
//! token through the secrets port.

mod api;
pub mod repository;
pub mod reviews;

pub use repository::GitHubRepository;
pub use reviews::GitHubReviews;
