use aws_sdk_codecommit::Client as CodeCommit;
use gild_aws::{codecommit::CodeCommitRepository, secretsmanager::SecretsManager};
use gild_github::GitHubRepository;
use lambda_runtime::Error;
use trigger::{serve, Config, RepositoryHost};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = gild_aws::prologue(Config::from_env).await?;
    match &config.host {
        RepositoryHost::CodeCommit { repository, .. } => {
            let repo = CodeCommitRepository::new(CodeCommit::new(&aws), repository);
            serve(&config, &aws, repo).await
        }
        RepositoryHost::GitHub {
            repository,
            token_secret,
            api_url,
        } => {
            let secrets = SecretsManager::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                std::time::Duration::from_secs(300),
            );
            let repo = GitHubRepository::new(api_url, repository, secrets, token_secret)?;
            serve(&config, &aws, repo).await
        }
    }
}
