//! Reference-table UDFs: `asset_field(ip, 'field')`, `identity_field(user, 'field')`,
//! `is_egress_gateway(ip)`, `is_trusted_ca(issuer)`, backed by the indexes of
//! [`crate::reference::Lookups`]. NULL or unknown input gives NULL (or false for
//! `is_trusted_ca` of a non-NULL issuer), never an error.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{bools, map_bools, map_strings, strings, texts};
use crate::reference::Lookups;

/// The lookup indexes, compared by identity (UDF instances must be `Eq + Hash`).
#[derive(Debug, Clone)]
pub(crate) struct Shared(pub(crate) Arc<Lookups>);

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Shared {}

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// Which lookup a [`Lookup`] UDF performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `asset_field(ip, field)`.
    AssetField,
    /// `identity_field(user, field)`.
    IdentityField,
    /// `is_egress_gateway(ip)`.
    EgressGateway,
    /// `is_trusted_ca(issuer)`.
    TrustedCa,
}

/// A reference lookup UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Lookup {
    kind: Kind,
    signature: Signature,
    lookups: Shared,
}

impl Lookup {
    pub(crate) fn new(kind: Kind, lookups: Arc<Lookups>) -> Lookup {
        let args = match kind {
            Kind::AssetField | Kind::IdentityField => 2,
            Kind::EgressGateway | Kind::TrustedCa => 1,
        };
        Lookup {
            kind,
            signature: Signature::string(args, Volatility::Immutable),
            lookups: Shared(lookups),
        }
    }
}

impl ScalarUDFImpl for Lookup {
    fn name(&self) -> &str {
        match self.kind {
            Kind::AssetField => "asset_field",
            Kind::IdentityField => "identity_field",
            Kind::EgressGateway => "is_egress_gateway",
            Kind::TrustedCa => "is_trusted_ca",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::AssetField | Kind::IdentityField => DataType::Utf8,
            Kind::EgressGateway | Kind::TrustedCa => DataType::Boolean,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = texts(self.name(), &args.args)?;
        let l = self.lookups.0.as_ref();
        let rows = args.number_rows;
        Ok(match self.kind {
            // The usual call names its field with a literal: find its column once.
            Kind::AssetField if a[1].is_scalar() => {
                match a[1].get(0).and_then(|f| l.asset_column(f)) {
                    Some(column) => map_strings(&a[0], |ip| l.asset_value(ip, column)),
                    None => strings(rows, &a, |_| None),
                }
            }
            Kind::AssetField => strings(rows, &a, |i| l.asset_field(a[0].get(i)?, a[1].get(i)?)),
            Kind::IdentityField => {
                strings(rows, &a, |i| l.identity_field(a[0].get(i)?, a[1].get(i)?))
            }
            Kind::EgressGateway => map_bools(&a[0], |ip| l.is_egress_gateway(ip)),
            Kind::TrustedCa => bools(rows, &a, |i| Some(l.is_trusted_ca(a[0].get(i)?))),
        })
    }
}
