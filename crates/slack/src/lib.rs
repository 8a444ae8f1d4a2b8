//! Slack messages for gild's announcements: what the `slack-notify` Lambda
//! posts to an incoming webhook.
//!
//! [`Notice::parse`] reads the announcement JSON a subscriber receives
//! (`gild.announcement/1`, see `gild_core::announce`), [`render`] turns it
//! into Block Kit `blocks` plus a `text` fallback for notifications. Every
//! text is escaped for mrkdwn and cut to Slack's documented limits, so no
//! input, however long or odd, makes Slack reject the payload;
//! [`block_kit_problems`] is the check that says so.
//!
//! Presentation only, and pure: this crate does no I/O (no network, files,
//! clock or environment) and must not depend on `aws-sdk-*` or an HTTP
//! client. Reading the SNS event and posting are `slack-notify`'s.
//!
//! - `notice`: an announcement body → [`Notice`], or a [`NoticeError`];
//!   its package changes, read leniently, are [`NoticePackages`].
//! - `link`: where commit and AMI links point ([`RepositoryLink`]), built
//!   only from validated parts.
//! - `render`: a [`Notice`] → [`SlackMessage`] (header, facts, the
//!   package changes, link buttons, context line, fallback text).
//! - `mrkdwn`: escaping and clipping text ([`escape_clip`], [`clip`]).
//! - `blockkit`: Block Kit's [`limits`] and [`block_kit_problems`], the
//!   validator every test that renders a payload runs.
//! - `fuzzing` (feature `fuzzing`): the fuzz target's entry point.

mod blockkit;
mod link;
mod mrkdwn;
mod notice;
mod render;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

#[cfg(test)]
mod testdata;

pub use blockkit::{block_kit_problems, limits};
pub use link::{ec2_console_url, RepositoryLink};
pub use mrkdwn::{clip, escape_clip};
pub use notice::{Links, Notice, NoticeError, NoticeOutcome, NoticePackages, PackageCounts};
pub use render::{render, render_body, SlackMessage};
