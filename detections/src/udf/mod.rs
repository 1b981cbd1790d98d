//! The UDFs rules and hunters use (docs/rules.md lists them): what SQL lacks for network and
//! identity questions. [`functions`] is THE registry: one line per function. Every function is
//! immutable (so filters using it are pushed down to scans) and NULL-safe.

mod args;
pub(crate) mod ip;
mod lookup;
mod net;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

use crate::reference::{Lookups, Reference};

/// Every UDF, with `lookups` behind the reference functions.
pub fn functions(lookups: &Arc<Lookups>) -> Vec<ScalarUDF> {
    use lookup::{Kind, Lookup};
    vec![
        ScalarUDF::new_from_impl(net::IpClass::new(net::Class::Private)),
        ScalarUDF::new_from_impl(net::IpClass::new(net::Class::Public)),
        ScalarUDF::new_from_impl(net::CidrContains::new()),
        ScalarUDF::new_from_impl(net::InCidrs::new()),
        ScalarUDF::new_from_impl(Lookup::new(Kind::AssetField, lookups.clone())),
        ScalarUDF::new_from_impl(Lookup::new(Kind::IdentityField, lookups.clone())),
        ScalarUDF::new_from_impl(Lookup::new(Kind::EgressGateway, lookups.clone())),
        ScalarUDF::new_from_impl(Lookup::new(Kind::TrustedCa, lookups.clone())),
    ]
}

/// Register the UDFs and the reference tables in `ctx` (rules, backfill and hunting sessions).
pub fn register(ctx: &SessionContext, reference: &Reference) -> datafusion::error::Result<()> {
    for f in functions(&reference.lookups()) {
        ctx.register_udf(f);
    }
    reference.register(ctx)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use arrow::array::{Array, AsArray, RecordBatch, StringArray, StringViewArray};
    use datafusion::datasource::MemTable;

    use super::*;

    async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(sql).await.expect(sql).collect().await.expect(sql)
    }

    fn bools(batches: &[RecordBatch], col: usize) -> Vec<Option<bool>> {
        batches.iter().flat_map(|b| b.column(col).as_boolean().iter().collect::<Vec<_>>()).collect()
    }

    fn texts(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let a = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Utf8)
                    .expect("cast");
                let a = a.as_string::<i32>().clone();
                (0..a.len())
                    .map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn context() -> SessionContext {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "assets".to_owned(),
            "cidr,app,env,owner,segment,classification\n10.0.0.0/8,corp,prod,it,core,internal\n10.0.1.0/24,payments,prod,pay,pci,confidential\nfd00::/8,mesh,prod,platform,mesh,internal\n".to_owned(),
        );
        overrides.insert(
            "identities".to_owned(),
            "user,display_name,status,privileged,terminated_at,break_glass,owner\nAlice@corp.example,Alice,terminated,true,2024-01-01T00:00:00Z,false,hr\n".to_owned(),
        );
        overrides.insert(
            "egress_gateways".to_owned(),
            "name,cidr,provider,account\nnat,52.0.0.0/30,aws,1\n".to_owned(),
        );
        overrides.insert(
            "trusted_cas".to_owned(),
            "name,pattern,provider\nCorp Root,Corp Issuing,\n".to_owned(),
        );
        let reference =
            Reference::empty().with_csv(&overrides, Path::new("t"), 1).expect("reference");
        let ctx = SessionContext::new();
        register(&ctx, &reference).expect("register");
        // Real rows: a Utf8 table and a Utf8View table (the lake may hand out either).
        let ips = StringArray::from(vec![
            Some("10.0.1.7"),
            Some("8.8.8.8"),
            Some("fd00::5"),
            Some("2001:db8::1"),
            None,
            Some("not-an-ip"),
            Some("::ffff:10.0.0.1"),
            Some("52.0.0.2"),
        ]);
        let batch =
            RecordBatch::try_from_iter([("ip", Arc::new(ips.clone()) as _)]).expect("batch");
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("mem");
        ctx.register_table("t", Arc::new(table)).expect("register t");
        let view: StringViewArray = ips.iter().collect();
        let batch = RecordBatch::try_from_iter([("ip", Arc::new(view) as _)]).expect("batch");
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("mem");
        ctx.register_table("v", Arc::new(table)).expect("register v");
        ctx
    }

    #[tokio::test]
    async fn network_functions_on_rows() {
        let ctx = context();
        for table in ["t", "v"] {
            let sql = format!(
                "SELECT is_private_ip(ip), is_public_ip(ip), cidr_contains('10.0.0.0/16', ip), in_cidrs(ip, '8.8.8.0/24, fd00::/16'), cidr_contains(ip, '10.0.1.7') FROM {table}"
            );
            let b = query(&ctx, &sql).await;
            let n = None;
            let (t, f) = (Some(true), Some(false));
            assert_eq!(bools(&b, 0), [t, f, t, f, n, n, t, f], "is_private_ip on {table}");
            assert_eq!(bools(&b, 1), [f, t, f, f, n, n, f, t], "is_public_ip on {table}");
            assert_eq!(bools(&b, 2), [t, f, f, f, n, n, t, f], "cidr_contains on {table}");
            assert_eq!(bools(&b, 3), [f, t, t, f, n, n, f, f], "in_cidrs on {table}");
            // The network as a column: each row is its own /32 or /128.
            assert_eq!(bools(&b, 4), [t, f, f, f, n, n, f, f], "cidr column on {table}");
        }
        let b = query(
            &ctx,
            "SELECT is_private_ip(NULL), is_public_ip('8.8.8.8'), in_cidrs('1.2.3.4', NULL)",
        )
        .await;
        assert_eq!(bools(&b, 0), [None]);
        assert_eq!(bools(&b, 1), [Some(true)]);
        assert_eq!(bools(&b, 2), [None]);
    }

    #[tokio::test]
    async fn lookups_on_rows() {
        let ctx = context();
        let b = query(
            &ctx,
            "SELECT asset_field(ip, 'app'), asset_field(ip, 'segment'), is_egress_gateway(ip) FROM t",
        )
        .await;
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            texts(&b, 0),
            [s("payments"), None, s("mesh"), None, None, None, s("corp"), None],
            "longest prefix match, IPv6 and mapped IPv4"
        );
        assert_eq!(texts(&b, 1)[0], s("pci"));
        assert_eq!(
            bools(&b, 2),
            [
                Some(false),
                Some(false),
                Some(false),
                Some(false),
                None,
                None,
                Some(false),
                Some(true)
            ]
        );
        let b = query(
            &ctx,
            "SELECT identity_field('ALICE@corp.example', 'status'), identity_field('alice@corp.example', 'privileged'), identity_field('bob', 'status'), identity_field('alice@corp.example', 'nosuchfield'), is_trusted_ca('CN=Corp Issuing CA 3'), is_trusted_ca('corp root'), is_trusted_ca('CN=Other'), is_trusted_ca(NULL)",
        )
        .await;
        assert_eq!(texts(&b, 0), [s("terminated")]);
        assert_eq!(texts(&b, 1), [s("true")]);
        assert_eq!(texts(&b, 2), [None]);
        assert_eq!(texts(&b, 3), [None]);
        assert_eq!(bools(&b, 4), [Some(true)]);
        assert_eq!(bools(&b, 5), [Some(true)]);
        assert_eq!(bools(&b, 6), [Some(false)]);
        assert_eq!(bools(&b, 7), [None]);
        // Reference tables are queryable too.
        let b = query(
            &ctx,
            "SELECT app FROM assets WHERE cidr_contains(cidr, '10.0.1.9') ORDER BY app",
        )
        .await;
        assert_eq!(texts(&b, 0), [s("corp"), s("payments")]);
    }
}
