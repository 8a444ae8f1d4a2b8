//! Real-shaped events, from the sample payloads in `tests/events/`, with the
//! fields a test controls filled in.

use serde_json::Value;

use crate::{aws, workspace_root, HarnessError};

/// A sample payload from `tests/events/`.
pub fn sample(name: &str) -> Result<Value, HarnessError> {
    let path = workspace_root().join("tests/events").join(name);
    let text = std::fs::read_to_string(&path).map_err(|source| HarnessError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| HarnessError::Json {
        context: format!("parsing {}", path.display()),
        source,
    })
}

/// A CodeCommit pull-request event (`pullRequestCreated`,
/// `pullRequestSourceBranchUpdated`, `pullRequestStatusChanged`,
/// `pullRequestMergeStatusUpdated`) of pull request `number` in
/// `repository` (in the emulator's account), its head at `source`.
pub fn pull_request(
    repository: &str,
    event: &str,
    number: u64,
    source: &str,
    destination: &str,
    revision: &str,
) -> Result<Value, HarnessError> {
    let mut sample = sample("codecommit-pull-request-opened.json")?;
    sample["id"] = Value::String(format!("pr-{number}-{event}-{source}"));
    sample["account"] = aws::ACCOUNT_ID.into();
    sample["resources"] = serde_json::json!([format!(
        "arn:aws:codecommit:{}:{}:{repository}",
        aws::REGION,
        aws::ACCOUNT_ID
    )]);
    let detail = &mut sample["detail"];
    detail["event"] = event.into();
    detail["pullRequestId"] = number.to_string().into();
    detail["repositoryNames"] = serde_json::json!([repository]);
    detail["sourceCommit"] = source.into();
    detail["destinationCommit"] = destination.into();
    detail["revisionId"] = revision.into();
    let closed =
        matches!(event, "pullRequestMergeStatusUpdated") || detail["pullRequestStatus"] == "Closed";
    detail["isMerged"] = if event == "pullRequestMergeStatusUpdated" {
        "True"
    } else {
        "False"
    }
    .into();
    if closed {
        detail["pullRequestStatus"] = "Closed".into();
    }
    Ok(sample)
}

/// `CodeCommit Repository State Change`: branch `branch` of `repository`
/// (in the emulator's account) moved `old → new`.
pub fn push(
    repository: &str,
    branch: &str,
    old: Option<&str>,
    new: &str,
) -> Result<Value, HarnessError> {
    let mut event = sample("codecommit-push.json")?;
    event["id"] = Value::String(format!("push-{new}"));
    event["account"] = aws::ACCOUNT_ID.into();
    event["resources"] = serde_json::json!([format!(
        "arn:aws:codecommit:{}:{}:{repository}",
        aws::REGION,
        aws::ACCOUNT_ID
    )]);
    let detail = &mut event["detail"];
    detail["repositoryName"] = repository.into();
    detail["referenceName"] = branch.into();
    detail["referenceFullName"] = format!("refs/heads/{branch}").into();
    detail["commitId"] = new.into();
    match old {
        Some(old) => detail["oldCommitId"] = old.into(),
        None => {
            detail["event"] = "referenceCreated".into();
            if let Some(map) = detail.as_object_mut() {
                map.remove("oldCommitId");
            }
        }
    }
    Ok(event)
}

/// The monthly `Scheduled Event` of the rule named `rule`, firing at `time`
/// (RFC 3339), in the emulator's account.
pub fn schedule(rule: &str, time: &str) -> Result<Value, HarnessError> {
    let mut event = sample("schedule.json")?;
    event["account"] = aws::ACCOUNT_ID.into();
    event["resources"] = serde_json::json!([format!(
        "arn:aws:events:{}:{}:rule/{rule}",
        aws::REGION,
        aws::ACCOUNT_ID
    )]);
    event["time"] = time.into();
    event["id"] = format!("schedule-{time}").into();
    Ok(event)
}

/// A `Build Requested` event with the given EventBridge id.
pub fn manual(id: &str, family: Option<&str>) -> Result<Value, HarnessError> {
    let mut event = sample("manual-build.json")?;
    event["id"] = id.into();
    event["detail"] = match family {
        Some(family) => serde_json::json!({"family": family, "requested_by": "test"}),
        None => serde_json::json!({"all": true, "requested_by": "test"}),
    };
    Ok(event)
}
