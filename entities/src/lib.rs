//! Plain sea-orm entities, one module per table. No GraphQL or HTTP concerns live here:
//! the API layer defines its own types (the API shape is not the table shape).
//!
//! Every tenant-owned table carries `workspace_id`; the API layer scopes every query by it.

pub mod api_key;
pub mod app_user;
pub mod company;
pub mod contact;
pub mod contact_identity;
pub mod contact_import;
pub mod contact_import_error;
pub mod contact_merge;
pub mod contact_tag;
pub mod custom_field;
pub mod deleted_contact;
pub mod enums;
pub mod event;
pub mod export_chunk;
pub mod export_job;
pub mod form;
pub mod job;
pub mod job_schedule;
pub mod landing_page;
pub mod notification;
pub mod segment;
pub mod segment_change;
pub mod segment_member;
pub mod team;
pub mod team_member;
pub mod tracked_link;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod workspace;
pub mod write_key;
