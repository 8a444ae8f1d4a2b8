//! What a bake's packages changed: compared when the bake finishes (its
//! list is in the bucket by then, `buildspecs/bake.yml`) against the
//! family's promoted image, and announced with the whole diff or a link.
//!
//! Information, never a gate: a list that cannot be read for good makes
//! the changes `unavailable` with the reason, and the bake goes on. Only a
//! transient failure fails the step, so Lambda's retry compares again.

use gild_core::announce::AnnouncedPackages;
use gild_core::bom::{self, bom_key, diff_key, DiffDocument, Lists, PackageChanges};
use gild_core::completion::parameter_name;
use gild_core::ledger::BakeKey;
use gild_core::ports::{
    Artifacts, BuildInfo, Images, Ledger, Notifier, Parameters, PortError, Reviews, Tests,
};
use tracing::{info, warn};

use crate::steps::Context;
use crate::{port, Completions, FlowError};

/// A read that failed for good, in words; `Ok(None)`: nothing stored.
type Read<T> = Result<Option<T>, String>;

impl<L, I, B, T, P, N, V, A> Completions<L, I, B, T, P, N, V, A>
where
    L: Ledger,
    I: Images,
    B: BuildInfo,
    T: Tests,
    P: Parameters,
    N: Notifier,
    V: Reviews,
    A: Artifacts,
{
    /// The bake's list against the promoted image's; the diff is stored
    /// under `bom::diff_key` for the announcement and `gild diff`.
    pub(crate) async fn compare_packages(
        &self,
        cx: &Context<'_>,
        image: &str,
    ) -> Result<PackageChanges, FlowError> {
        let key = &cx.record.key;
        let family = key.family.as_str();
        let parameter = parameter_name(&self.settings.parameter_prefix, family);
        let unavailable = |reason: String, against: Option<String>| {
            Ok(PackageChanges::Unavailable { reason, against })
        };
        let promoted = match self
            .settled(key, "read the promoted image", || {
                self.ports.parameters.current(&parameter)
            })
            .await?
        {
            Ok(promoted) => promoted.filter(|p| p != image),
            Err(why) => return unavailable(format!("{parameter} could not be read: {why}"), None),
        };
        let new = match self.object(key, &bom_key(image)).await? {
            Ok(new) => new,
            Err(why) => return unavailable(why, promoted),
        };
        let old = match &promoted {
            Some(promoted) => match self.object(key, &bom_key(promoted)).await? {
                Ok(old) => old,
                Err(why) => return unavailable(why, Some(promoted.clone())),
            },
            None => None,
        };
        let (changes, document) = bom::compare(Lists {
            family,
            image,
            new: new.as_deref(),
            promoted: promoted.as_deref().map(|p| (p, old.as_deref())),
        });
        if let Some(document) = document {
            self.store(key, image, &document).await?;
        }
        info!(family, image, packages = %changes, "compared the packages");
        Ok(changes)
    }

    /// Puts the diff where the announcement and `gild diff` read it. One
    /// refused for good is logged, not fatal: the summary is already in
    /// hand, and the announcement then goes without the whole diff.
    async fn store(
        &self,
        key: &BakeKey,
        image: &str,
        document: &DiffDocument,
    ) -> Result<(), FlowError> {
        let object = diff_key(image);
        let body = match serde_json::to_vec(document) {
            Ok(body) => body,
            // These types always serialise; were one not to, the
            // announcement goes without the whole diff, as below.
            Err(error) => {
                warn!(family = %key.family, object, %error, "the package diff was not written");
                return Ok(());
            }
        };
        let stored = self
            .settled(key, "store the package diff", || {
                self.ports.artifacts.put(&object, body.clone())
            })
            .await?;
        if let Err(why) = stored {
            warn!(family = %key.family, object, why, "the package diff was not stored");
        }
        Ok(())
    }

    /// The object's bytes, `Ok(None)` when none is stored, `Err` (in
    /// words) when it cannot be read for good.
    async fn object(&self, key: &BakeKey, object: &str) -> Result<Read<Vec<u8>>, FlowError> {
        Ok(self
            .settled(key, "read a bill of materials", || {
                self.ports.artifacts.get(object)
            })
            .await?
            .map_err(|why| format!("{object} could not be read: {why}")))
    }

    /// A call retried with gild's backoff; what still fails is the step's
    /// error when it is transient (Lambda's retry comes back), and the
    /// caller's to word when it is final.
    async fn settled<R, F, Fut>(
        &self,
        key: &BakeKey,
        work: &'static str,
        call: F,
    ) -> Result<Result<R, String>, FlowError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R, PortError>>,
    {
        match self.retrying(key, call).await {
            Ok(answer) => Ok(Ok(answer)),
            Err(error) if error.is_transient() => Err(port(work, key, error)),
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    /// The announcement's packages with the whole diff when it is small
    /// enough, else a link to it. Never fails the announcement: without
    /// the diff it still carries the summary.
    pub(crate) async fn attach_diff(&self, cx: &Context<'_>, packages: &mut AnnouncedPackages) {
        let (Some(image), PackageChanges::Compared { .. }) =
            (cx.record.image.as_deref(), &packages.changes)
        else {
            return;
        };
        let key = &cx.record.key;
        let object = diff_key(image);
        if packages.changes.inline() {
            match self
                .retrying(key, || self.ports.artifacts.get(&object))
                .await
            {
                Ok(Some(bytes)) => match DiffDocument::parse(&bytes, image) {
                    Ok(document) => {
                        packages.diff = Some(document.diff);
                        packages.location = Some(self.ports.artifacts.uri(&object));
                        return;
                    }
                    Err(why) => warn!(object, why, "the stored diff is refused; linking it"),
                },
                Ok(None) => {
                    warn!(
                        object,
                        "no package diff is stored; announcing the summary alone"
                    );
                    return;
                }
                Err(error) => {
                    warn!(object, %error, "the package diff could not be read; linking it")
                }
            }
        }
        match self.ports.artifacts.link(&object, bom::LINK_SECS).await {
            Ok(link) => packages.link = Some(link),
            Err(error) => warn!(object, %error, "the package diff could not be linked"),
        }
        packages.location = Some(self.ports.artifacts.uri(&object));
    }
}
