//! The artifact bucket in memory: objects by key, scripted faults on reads.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use super::lock;
use crate::ports::{Artifacts, PortError, PortResult};

/// The bucket's name in links and URIs.
pub const BUCKET: &str = "gild-artifacts";

#[derive(Default)]
pub struct MemoryArtifacts {
    pub objects: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Returned, in order, by the next reads.
    pub get_faults: Mutex<VecDeque<PortError>>,
    /// Returned, in order, by the next writes.
    pub put_faults: Mutex<VecDeque<PortError>>,
}

impl MemoryArtifacts {
    pub fn insert(&self, key: &str, body: impl Into<Vec<u8>>) {
        lock(&self.objects).insert(key.to_owned(), body.into());
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(key).cloned()
    }
}

impl Artifacts for MemoryArtifacts {
    fn get(&self, key: &str) -> impl Future<Output = PortResult<Option<Vec<u8>>>> + Send {
        let answer = match lock(&self.get_faults).pop_front() {
            Some(fault) => Err(fault),
            None => Ok(self.object(key)),
        };
        async move { answer }
    }

    fn put(&self, key: &str, body: Vec<u8>) -> impl Future<Output = PortResult<()>> + Send {
        let answer = match lock(&self.put_faults).pop_front() {
            Some(fault) => Err(fault),
            None => {
                self.insert(key, body);
                Ok(())
            }
        };
        async move { answer }
    }

    fn link(&self, key: &str, secs: u64) -> impl Future<Output = PortResult<String>> + Send {
        let link = format!("https://{BUCKET}.s3.amazonaws.com/{key}?X-Amz-Expires={secs}");
        async move { Ok(link) }
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{BUCKET}/{key}")
    }
}
