//! Group calls: the one step of resolution that writes, since it may make the company it
//! names (see `Batch::run`).

use super::parse::{Kind, Message};
use super::persist::COMPANY_NAME_LOCKS;
use super::resolve::{Batch, CompanyKey, company_key, text_trait};
use entities::company;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use serde_json::json;
use uuid::Uuid;

impl Batch {
    /// Group calls naming a company by name alone find it or create it by that name, which no
    /// unique key covers (two companies may share a name; a domain has its own unique key). So
    /// that concurrent batches naming the same new company create it once, each batch holds a
    /// lock on the names it groups by until it commits, taken before it looks them up.
    pub(super) async fn lock_company_names(
        &self,
        db: &impl ConnectionTrait,
        messages: &[Message],
    ) -> Result<(), DbErr> {
        use sha2::{Digest, Sha256};
        let keys: Vec<i32> = messages
            .iter()
            .filter(|m| m.kind == Kind::Group)
            .filter_map(|m| match company_key(m) {
                Some(CompanyKey::Name(name)) => Some(name),
                _ => None,
            })
            .map(|name| {
                let digest = Sha256::new()
                    .chain_update(self.workspace_id.as_bytes())
                    .chain_update(name.as_bytes())
                    .finalize();
                i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
            })
            .collect();
        crate::db::lock_for_transaction(db, COMPANY_NAME_LOCKS, &keys, false).await
    }

    /// Links the calling contact to the group's company: the one known by this `groupId`, else
    /// the one its traits name (by domain, else by name; it takes the group id if it had none),
    /// else a new one keyed by the group id and named by the traits, or by the id until traits
    /// with a name arrive.
    pub(super) async fn group(&mut self, db: &impl ConnectionTrait, message: &Message) -> Result<(), DbErr> {
        let contact_id = self.profile(message)?;
        let Some(group_key) = message.group_id.as_deref() else {
            return Ok(());
        };
        let name = text_trait(&message.traits, &["name"]);
        let industry = text_trait(&message.traits, &["industry"]);
        let in_workspace = || company::Entity::find().filter(company::Column::WorkspaceId.eq(self.workspace_id));
        let by_group_key = || in_workspace().filter(company::Column::GroupKey.eq(group_key));
        let company_id = match by_group_key().one(db).await? {
            Some(known) => {
                self.name_placeholder(db, &known, name, industry).await?;
                known.id
            }
            None => {
                let traits_key = company_key(message);
                let (found, domain) = match traits_key {
                    Some(CompanyKey::Domain(domain)) => (
                        in_workspace()
                            .filter(company::Column::Domain.eq(domain.clone()))
                            .one(db)
                            .await?,
                        Some(domain),
                    ),
                    Some(CompanyKey::Name(name)) => (
                        in_workspace().filter(company::Column::Name.eq(name)).one(db).await?,
                        None,
                    ),
                    None => (None, None),
                };
                match found {
                    Some(found) => {
                        if found.group_key.is_none() {
                            company::Entity::update_many()
                                .col_expr(company::Column::GroupKey, Expr::val(group_key))
                                .filter(company::Column::Id.eq(found.id))
                                .filter(company::Column::GroupKey.is_null())
                                .exec(db)
                                .await?;
                        }
                        found.id
                    }
                    None => {
                        let model = company::Model {
                            id: Uuid::now_v7(),
                            workspace_id: self.workspace_id,
                            name: name.or_else(|| domain.clone()).unwrap_or_else(|| group_key.to_owned()),
                            domain,
                            industry,
                            size: None,
                            owner_id: None,
                            group_key: Some(group_key.to_owned()),
                            custom_fields: json!({}),
                            created_at: self.now,
                            updated_at: self.now,
                        };
                        // A concurrent batch may make the same group's company first: then it is ours.
                        company::Entity::insert(company::ActiveModel::from(model).reset_all())
                            .on_conflict(
                                OnConflict::columns([company::Column::WorkspaceId, company::Column::GroupKey])
                                    .do_nothing()
                                    .to_owned(),
                            )
                            .exec_without_returning(db)
                            .await?;
                        let Some(made) = by_group_key().one(db).await? else {
                            return Err(DbErr::RecordNotFound(format!("company of group {group_key}")));
                        };
                        made.id
                    }
                }
            }
        };
        let is_stored = self.stored.contains_key(&contact_id);
        if let Some(m) = self
            .stored
            .get_mut(&contact_id)
            .or_else(|| self.created.get_mut(&contact_id))
        {
            m.company_id = Some(company_id);
            if is_stored {
                self.dirty.insert(contact_id);
            }
        }
        Ok(())
    }

    /// A company made from a bare `groupId` is named by the id; the first traits that name it
    /// give it its name (and an industry it lacks). Names a marketer gave are never overwritten.
    async fn name_placeholder(
        &mut self,
        db: &impl ConnectionTrait,
        company: &company::Model,
        name: Option<String>,
        industry: Option<String>,
    ) -> Result<(), DbErr> {
        let rename = name.filter(|_| company.group_key.as_deref() == Some(company.name.as_str()));
        let industry = industry.filter(|_| company.industry.is_none());
        if rename.is_none() && industry.is_none() {
            return Ok(());
        }
        let mut update = company::Entity::update_many()
            .col_expr(company::Column::UpdatedAt, Expr::val(self.now))
            .filter(company::Column::Id.eq(company.id));
        if let Some(name) = rename {
            update = update.col_expr(company::Column::Name, Expr::val(name));
        }
        if let Some(industry) = industry {
            update = update.col_expr(company::Column::Industry, Expr::val(industry));
        }
        update.exec(db).await?;
        self.companies_changed.push(company.id);
        Ok(())
    }
}
