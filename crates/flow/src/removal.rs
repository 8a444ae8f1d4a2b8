//! Removing an image gild made, and its snapshots: shared by the failure
//! step of a bake and by superseding a pull request's candidates.

use gild_core::ledger::BakeKey;
use gild_core::ports::{Images, PortError};
use gild_core::retry::Backoff;
use gild_core::steps;
use gild_lambda::retry::{seed, with_backoff};
use tracing::{info, warn};

/// Deregisters `image_id` and deletes its snapshots if `build` made it;
/// anything else is left alone (and an image already gone is done). The
/// error names the call that failed.
pub(crate) async fn remove_image<I: Images>(
    images: &I,
    backoff: &Backoff,
    key: &BakeKey,
    image_id: &str,
    build: &str,
) -> Result<(), (&'static str, PortError)> {
    let retry = || with_backoff(backoff, seed(&key.family), || images.describe(image_id));
    let image = retry().await.map_err(|e| ("describe image", e))?;
    let Some(image) = image else {
        return Ok(());
    };
    if !steps::made_by(&image, build) {
        warn!(
            image = image_id,
            build, "not removing an image this build did not make"
        );
        return Ok(());
    }
    with_backoff(backoff, seed(&key.family), || images.deregister(image_id))
        .await
        .map_err(|e| ("deregister image", e))?;
    for snapshot in &image.snapshots {
        with_backoff(backoff, seed(&key.family), || {
            images.delete_snapshot(snapshot)
        })
        .await
        .map_err(|e| ("delete snapshot", e))?;
    }
    info!(
        image = image_id,
        snapshots = image.snapshots.len(),
        "removed"
    );
    Ok(())
}
