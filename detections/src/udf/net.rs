//! Network UDFs: `is_private_ip(ip)`, `is_public_ip(ip)`, `cidr_contains(cidr, ip)`,
//! `in_cidrs(ip, 'cidr1,cidr2,…')`. NULL or unparsable input gives NULL, never an error.

use arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Text, bools, map_bools, texts};
use super::ip::{Cidr, Parsed, parse_ip};

/// Which classification an [`IpClass`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// `is_private_ip`.
    Private,
    /// `is_public_ip`.
    Public,
}

/// `is_private_ip(ip)` / `is_public_ip(ip)`: a classification of one address.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IpClass {
    class: Class,
    signature: Signature,
}

impl IpClass {
    pub(crate) fn new(class: Class) -> IpClass {
        IpClass { class, signature: Signature::string(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for IpClass {
    fn name(&self) -> &str {
        match self.class {
            Class::Private => "is_private_ip",
            Class::Public => "is_public_ip",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = texts(self.name(), &args.args)?;
        let class: fn(&Parsed) -> bool = match self.class {
            Class::Private => Parsed::is_private,
            Class::Public => Parsed::is_public,
        };
        Ok(map_bools(&a[0], |s| Parsed::of(s).map(|ip| class(&ip))))
    }
}

/// `cidr_contains(cidr, ip)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CidrContains {
    signature: Signature,
}

impl CidrContains {
    pub(crate) fn new() -> CidrContains {
        CidrContains { signature: Signature::string(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for CidrContains {
    fn name(&self) -> &str {
        "cidr_contains"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = texts(self.name(), &args.args)?;
        // The network is usually a literal: parse it once.
        let fixed = match &a[0] {
            Text::Scalar(v) => Some(v.as_deref().and_then(Cidr::parse)),
            Text::Array(_) => None,
        };
        Ok(bools(args.number_rows, &a, |i| {
            let net = match fixed {
                Some(net) => net?,
                None => Cidr::parse(a[0].get(i)?)?,
            };
            Some(net.contains(parse_ip(a[1].get(i)?)?))
        }))
    }
}

/// `in_cidrs(ip, 'cidr1,cidr2,…')`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct InCidrs {
    signature: Signature,
}

impl InCidrs {
    pub(crate) fn new() -> InCidrs {
        InCidrs { signature: Signature::string(2, Volatility::Immutable) }
    }
}

fn parse_list(list: &str) -> Vec<Cidr> {
    list.split([',', ' ', ';']).filter(|s| !s.is_empty()).filter_map(Cidr::parse).collect()
}

impl ScalarUDFImpl for InCidrs {
    fn name(&self) -> &str {
        "in_cidrs"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = texts(self.name(), &args.args)?;
        let fixed: Option<Option<Vec<Cidr>>> = match &a[1] {
            Text::Scalar(v) => Some(v.as_deref().map(parse_list)),
            Text::Array(_) => None,
        };
        Ok(bools(args.number_rows, &a, |i| {
            let ip = parse_ip(a[0].get(i)?)?;
            match &fixed {
                Some(list) => Some(list.as_ref()?.iter().any(|n| n.contains(ip))),
                None => Some(parse_list(a[1].get(i)?).iter().any(|n| n.contains(ip))),
            }
        }))
    }
}
