//! Real-shaped events, from the sample payloads in `tests/events/`, with the
//! fields a test controls filled in.

use serde_json::Value;

use crate::{workspace_root, HarnessError};

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

/// `CodeCommit Repository State Change`: branch `branch` moved `old → new`.
pub fn push(branch: &str, old: Option<&str>, new: &str) -> Result<Value, HarnessError> {
    let mut event = sample("codecommit-push.json")?;
    event["id"] = Value::String(format!("push-{new}"));
    let detail = &mut event["detail"];
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

/// The monthly `Scheduled Event` firing at `time` (RFC 3339).
pub fn schedule(time: &str) -> Result<Value, HarnessError> {
    let mut event = sample("schedule.json")?;
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
