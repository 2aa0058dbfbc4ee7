//! ImportService: an office's export imported as a background job (`import::jobs`).
use cartella_proto::v1::{self as pb, import_service_server::ImportService};
use tonic::{Request, Response, Status};

use super::caller;
use crate::import::jobs::Jobs;

#[derive(Clone, Debug)]
pub struct ImportSvc {
    jobs: Jobs,
}

impl ImportSvc {
    pub fn new(jobs: Jobs) -> Self {
        Self { jobs }
    }
}

#[tonic::async_trait]
impl ImportService for ImportSvc {
    async fn start_import(&self, r: Request<pb::StartImportRequest>) -> Result<Response<pb::ImportJob>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(self.jobs.start(&c, r.into_inner()).await?))
    }

    async fn get_import(&self, r: Request<pb::ImportRef>) -> Result<Response<pb::ImportJob>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(self.jobs.get(&c, &r.into_inner().id).await?))
    }

    async fn list_imports(&self, r: Request<pb::ListImportsRequest>) -> Result<Response<pb::ListImportsResponse>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(self.jobs.list(&c, r.get_ref()).await?))
    }

    async fn list_import_problems(
        &self,
        r: Request<pb::ListImportProblemsRequest>,
    ) -> Result<Response<pb::ListImportProblemsResponse>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(self.jobs.problems(&c, r.get_ref()).await?))
    }

    async fn cancel_import(&self, r: Request<pb::ImportRef>) -> Result<Response<pb::ImportJob>, Status> {
        let c = caller(&r)?;
        Ok(Response::new(self.jobs.cancel(&c, &r.into_inner().id).await?))
    }
}
