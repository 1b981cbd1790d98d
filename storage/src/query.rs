//! Registration of the lake's tables in DataFusion (storage stage → hunting and rules).
//!
//! [`Lake::register`] exposes every existing table under its SQL name (`flows`, `signins`,
//! `cert_events`, `quarantine`) through deltalake's table provider, so partition filters
//! (`provider = 'aws' AND date >= '2024-01-01'`) select files from the Delta log alone and
//! `time` (or port, account, ...) filters skip files by their statistics. The session learns
//! the lake's object store at the same time. Each registration is a snapshot: call
//! `register` again to see later commits.

use datafusion::prelude::SessionContext;
use ztlake_normalize::schema::Table;

use crate::error::{Error, Result};
use crate::lake::Lake;

impl Lake {
    /// Register every existing table of the lake in `ctx` under its name (replacing an
    /// earlier registration) and return the tables registered.
    pub async fn register(&self, ctx: &SessionContext) -> Result<Vec<Table>> {
        let mut registered = Vec::new();
        for t in Table::ALL {
            let Some(table) = self.existing(t).await? else {
                continue;
            };
            let df_err = |source| Error::DataFusion {
                url: self.table_url(t).to_string(),
                table: t,
                source: Box::new(source),
            };
            table
                .update_datafusion_session(&ctx.state())
                .map_err(|e| self.delta_err(t, "register object store", e))?;
            let provider = table.table_provider().await.map_err(df_err)?;
            ctx.deregister_table(t.name()).map_err(df_err)?;
            ctx.register_table(t.name(), provider).map_err(df_err)?;
            registered.push(t);
        }
        Ok(registered)
    }
}
