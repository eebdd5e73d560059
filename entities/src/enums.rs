//! Enumerations stored as short strings, so both SQLite and PostgreSQL hold them the same way
//! and adding a variant never needs a type migration.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum LifecycleStage {
    #[sea_orm(string_value = "subscriber")]
    Subscriber,
    #[sea_orm(string_value = "lead")]
    Lead,
    #[sea_orm(string_value = "marketing_qualified")]
    MarketingQualified,
    #[sea_orm(string_value = "sales_qualified")]
    SalesQualified,
    #[sea_orm(string_value = "opportunity")]
    Opportunity,
    #[sea_orm(string_value = "customer")]
    Customer,
    #[sea_orm(string_value = "evangelist")]
    Evangelist,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ConsentStatus {
    /// Never asked or never answered.
    #[sea_orm(string_value = "unknown")]
    Unknown,
    #[sea_orm(string_value = "granted")]
    Granted,
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum Role {
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "marketer")]
    Marketer,
    #[sea_orm(string_value = "sales")]
    Sales,
    #[sea_orm(string_value = "analyst")]
    Analyst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum CompanySize {
    #[sea_orm(string_value = "1-10")]
    S1To10,
    #[sea_orm(string_value = "11-50")]
    S11To50,
    #[sea_orm(string_value = "51-200")]
    S51To200,
    #[sea_orm(string_value = "201-1000")]
    S201To1000,
    #[sea_orm(string_value = "1001-5000")]
    S1001To5000,
    #[sea_orm(string_value = "5001+")]
    S5001Plus,
}

/// Which kind of record a custom field definition applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum ObjectType {
    #[sea_orm(string_value = "contact")]
    Contact,
    #[sea_orm(string_value = "company")]
    Company,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum CustomFieldType {
    #[sea_orm(string_value = "text")]
    Text,
    #[sea_orm(string_value = "number")]
    Number,
    #[sea_orm(string_value = "boolean")]
    Boolean,
    /// Stored as an ISO-8601 `YYYY-MM-DD` string so it sorts as text.
    #[sea_orm(string_value = "date")]
    Date,
    #[sea_orm(string_value = "single_select")]
    SingleSelect,
    /// Stored as a JSON array of option values.
    #[sea_orm(string_value = "multi_select")]
    MultiSelect,
}
