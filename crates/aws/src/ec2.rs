//! AMIs and their snapshots on EC2.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Image, Tag};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use gild_core::ports::{ImageInfo, Images, PortResult, SnapshotInfo};

use crate::classify;

const SERVICE: &str = "EC2";

/// EC2 rejects tag values longer than this many Unicode characters.
const MAX_TAG_VALUE_CHARS: usize = 256;

/// Codes EC2 answers for an image id that names no image this account can
/// see: never registered, already deregistered, or not an id at all.
const IMAGE_GONE: &[&str] = &[
    "InvalidAMIID.NotFound",
    "InvalidAMIID.Malformed",
    "InvalidAMIID.Unavailable",
];

pub struct Ec2Images {
    client: Client,
}

impl Ec2Images {
    pub fn new(client: Client) -> Self {
        Ec2Images { client }
    }
}

fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(ProvideErrorMetadata::code)
}

fn to_info(image: &Image) -> ImageInfo {
    ImageInfo {
        id: image.image_id().unwrap_or_default().to_owned(),
        name: image.name().map(str::to_owned),
        state: image
            .state()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        snapshots: image
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|ebs| ebs.snapshot_id()))
            .map(str::to_owned)
            .collect(),
        tags: tags_of(image.tags()),
    }
}

/// The account's own resources tagged `key=value`.
fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// Cuts a tag value to EC2's limit, so an over-long commit message or
/// reason degrades a tag instead of failing the whole step.
fn tag_value(value: &str) -> String {
    match value.char_indices().nth(MAX_TAG_VALUE_CHARS) {
        Some((end, _)) => value[..end].to_owned(),
        None => value.to_owned(),
    }
}

impl Images for Ec2Images {
    async fn describe(&self, image_id: &str) -> PortResult<Option<ImageInfo>> {
        let result = self
            .client
            .describe_images()
            .image_ids(image_id)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .images()
                .iter()
                .find(|i| i.image_id() == Some(image_id))
                .map(to_info)),
            Err(err) if error_code(&err).is_some_and(|c| IMAGE_GONE.contains(&c)) => Ok(None),
            Err(err) => Err(classify(SERVICE, "DescribeImages", err)),
        }
    }

    async fn find_by_tag(&self, key: &str, value: &str) -> PortResult<Vec<ImageInfo>> {
        let mut pages = self
            .client
            .describe_images()
            .owners("self")
            .filters(tag_filter(key, value))
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, "DescribeImages", e))?;
            images.extend(page.images().iter().map(to_info));
        }
        Ok(images)
    }

    async fn tag(&self, resources: &[String], tags: &[(String, String)]) -> PortResult<()> {
        if resources.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(tag_value(v)).build())
            .collect();
        self.client
            .create_tags()
            .set_resources(Some(resources.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "CreateTags", e))?;
        Ok(())
    }

    async fn deregister(&self, image_id: &str) -> PortResult<()> {
        match self
            .client
            .deregister_image()
            .image_id(image_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // A retried cleanup finds its own earlier work done.
            Err(err)
                if error_code(&err).is_some_and(|c| {
                    c == "InvalidAMIID.NotFound" || c == "InvalidAMIID.Unavailable"
                }) =>
            {
                Ok(())
            }
            Err(err) => Err(classify(SERVICE, "DeregisterImage", err)),
        }
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> PortResult<()> {
        match self
            .client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if error_code(&err) == Some("InvalidSnapshot.NotFound") => Ok(()),
            Err(err) => Err(classify(SERVICE, "DeleteSnapshot", err)),
        }
    }

    async fn snapshots_by_tag(&self, key: &str, value: &str) -> PortResult<Vec<SnapshotInfo>> {
        let mut pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(tag_filter(key, value))
            .into_paginator()
            .send();
        let mut snapshots = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, "DescribeSnapshots", e))?;
            snapshots.extend(page.snapshots().iter().map(|snapshot| SnapshotInfo {
                id: snapshot.snapshot_id().unwrap_or_default().to_owned(),
                tags: tags_of(snapshot.tags()),
            }));
        }
        Ok(snapshots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_are_cut_on_a_char_boundary() {
        assert_eq!(tag_value("short"), "short");
        let exact = "a".repeat(256);
        assert_eq!(tag_value(&exact), exact);
        let long = "é".repeat(300);
        let cut = tag_value(&long);
        assert_eq!(cut.chars().count(), 256);
        assert!(long.starts_with(&cut));
    }
}
