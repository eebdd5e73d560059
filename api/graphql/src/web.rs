//! Managing forms, landing pages and tracked links (campaign assets).

use crate::contacts::Channel;
use crate::guards::ScopeGuard;
use crate::relay::NodeId;
use crate::relay::NodeKind;
use crate::request;
use crate::user_error::{UserError, into_payload};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::{form, landing_page, tracked_link};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use voxtur_core::auth::Scope;
use voxtur_core::web::forms::{FieldKind, FormConsent, FormDefinition, FormField, consents_of, fields_of};
use voxtur_core::web::links::LinkTarget;
use voxtur_core::web::pages::PageContent;

/// The kind of input a form field is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "voxtur_core::web::forms::FieldKind")]
pub enum FormFieldType {
    /// One line of text.
    Text,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A number.
    Number,
    /// Several lines of text.
    Textarea,
    /// One of the options.
    Select,
    /// A tick box.
    Checkbox,
    /// A date, YYYY-MM-DD.
    Date,
}

/// One input of a form.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "FormFieldInput")]
pub struct FormFieldSpec {
    /// The field's name in submissions (letters, digits, _).
    pub key: String,
    /// What the visitor sees (1 to 200 characters).
    pub label: String,
    /// The kind of input.
    #[graphql(name = "type")]
    pub field_type: FormFieldType,
    /// The contact property it fills: `email`, `firstName`, `lastName`, `phone` or
    /// `custom:<key>`; none to only record the answer.
    pub maps_to: Option<String>,
    /// Must be filled.
    #[graphql(default)]
    pub required: bool,
    /// Choices of a SELECT field (at most 500, each 1 to 200 characters).
    #[graphql(default)]
    pub options: Vec<String>,
}

/// A consent checkbox of a form; ticking it grants consent on the channel.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "FormConsentInput")]
pub struct FormConsentSpec {
    /// The channel consented to (submitted as `consent_<channel>`, e.g. `consent_email`).
    pub channel: Channel,
    /// The wording the visitor agrees to (at most 2,000 characters).
    pub label: String,
    /// Must be ticked to submit.
    #[graphql(default)]
    pub required: bool,
}

/// A form that captures contacts.
pub struct Form(pub form::Model);

/// A form that captures contacts.
#[Object(guard = "ScopeGuard(Scope::CampaignsRead)")]
impl Form {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::Form.id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Inputs, in order.
    async fn fields(&self) -> Vec<FormFieldSpec> {
        fields_of(&self.0)
            .into_iter()
            .map(|f| FormFieldSpec {
                key: f.key,
                label: f.label,
                field_type: f.kind.into(),
                maps_to: f.maps_to,
                required: f.required,
                options: f.options,
            })
            .collect()
    }
    /// Consent checkboxes.
    async fn consents(&self) -> Vec<FormConsentSpec> {
        consents_of(&self.0)
            .into_iter()
            .filter_map(|c| {
                Some(FormConsentSpec {
                    channel: Channel::parse(&c.channel)?,
                    label: c.label,
                    required: c.required,
                })
            })
            .collect()
    }
    /// Shown after a successful submission (at most 2,000 characters).
    async fn success_message(&self) -> Option<&str> {
        self.0.success_message.as_deref()
    }
    /// Where browsers go after submitting.
    async fn redirect_url(&self) -> Option<&str> {
        self.0.redirect_url.as_deref()
    }
    /// Whether the contact's owner is notified of each submission.
    async fn notify_owner(&self) -> bool {
        self.0.notify_owner
    }
    /// The public endpoint that takes submissions (JSON or urlencoded).
    async fn submit_path(&self) -> String {
        format!("/forms/{}", self.0.id)
    }
    /// When the form was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A form's definition.
#[derive(InputObject)]
pub struct FormInput {
    /// Name (1 to 200 characters).
    pub name: String,
    /// Inputs, in order; exactly one required EMAIL field mapped to `email`.
    pub fields: Vec<FormFieldSpec>,
    /// Consent checkboxes, at most one per channel.
    #[graphql(default)]
    pub consents: Vec<FormConsentSpec>,
    /// Shown after a successful submission.
    pub success_message: Option<String>,
    /// Where browsers go after submitting (http or https, at most 2,000 characters).
    pub redirect_url: Option<String>,
    /// Notify the contact's owner of each submission.
    #[graphql(default)]
    pub notify_owner: bool,
}

/// A public page with optional embedded form.
pub struct LandingPage(pub landing_page::Model);

/// A public page with optional embedded form.
#[Object(guard = "ScopeGuard(Scope::CampaignsRead)")]
impl LandingPage {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::LandingPage.id(self.0.id)
    }
    /// The last part of its address.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// The body, as sanitized when saved.
    async fn body_html(&self) -> &str {
        &self.0.body_html
    }
    /// Id of the embedded form.
    async fn form_id(&self) -> Option<ID> {
        self.0.form_id.map(|id| NodeKind::Form.id(id))
    }
    /// Served publicly.
    async fn published(&self) -> bool {
        self.0.published
    }
    /// The page's own CSS, applied after the default stylesheet.
    async fn css(&self) -> Option<&str> {
        self.0.css.as_deref()
    }
    /// Who may show the page in a frame, as CSP sources.
    async fn frame_ancestors(&self) -> &str {
        self.0.frame_ancestors.as_deref().unwrap_or("'self'")
    }
    /// The public path of the page.
    async fn path(&self) -> String {
        format!("/p/{}/{}", self.0.workspace_id, self.0.slug)
    }
}

/// A landing page's content.
#[derive(InputObject)]
pub struct LandingPageInput {
    /// Lower-case letters, digits and dashes (1 to 100); unique in the workspace.
    pub slug: String,
    /// Title (1 to 300 characters).
    pub title: String,
    /// HTML body, at most 512 KB; scripts, event handlers and `javascript:` URLs are removed.
    pub body_html: String,
    /// A form to embed.
    pub form_id: Option<ID>,
    /// Serve it publicly.
    #[graphql(default = true)]
    pub published: bool,
    /// The page's own CSS, applied after the default stylesheet (so it overrides it); at most
    /// 64 KB, no `<`.
    pub css: Option<String>,
    /// Who may show the page in a frame: `self`, `none`, or origins such as
    /// `https://shop.example` (the CSP `frame-ancestors`); default: this site only.
    pub frame_ancestors: Option<Vec<String>>,
}

/// A short link that redirects and records the click.
pub struct TrackedLink(pub tracked_link::Model);

/// A short link that redirects and records the click.
#[Object(guard = "ScopeGuard(Scope::CampaignsRead)")]
impl TrackedLink {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::TrackedLink.id(self.0.id)
    }
    /// The short code.
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// The public path that redirects.
    async fn path(&self) -> String {
        format!("/l/{}", self.0.code)
    }
    /// Where it leads.
    async fn target_url(&self) -> &str {
        &self.0.target_url
    }
    /// The campaign clicks are attributed to (at most 300 characters, as each utm value).
    async fn campaign(&self) -> Option<&str> {
        self.0.campaign.as_deref()
    }
    /// When the link was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A link to create.
#[derive(InputObject)]
pub struct TrackedLinkInput {
    /// Where the link leads (http or https only, at most 2,000 characters).
    pub target_url: String,
    /// The campaign clicks are attributed to.
    pub campaign: Option<String>,
    /// utm_source added to the target when it has none.
    pub utm_source: Option<String>,
    /// utm_medium added to the target when it has none.
    pub utm_medium: Option<String>,
    /// utm_campaign added to the target when it has none.
    pub utm_campaign: Option<String>,
}

/// Result of form mutations.
#[derive(SimpleObject)]
pub struct FormPayload {
    /// The saved form.
    pub form: Option<Form>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of landing page mutations.
#[derive(SimpleObject)]
pub struct LandingPagePayload {
    /// The saved page.
    pub landing_page: Option<LandingPage>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `trackedLinkCreate`.
#[derive(SimpleObject)]
pub struct TrackedLinkPayload {
    /// The new link.
    pub tracked_link: Option<TrackedLink>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct WebQuery;

#[Object]
impl WebQuery {
    /// Forms, newest first.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsRead)")]
    async fn forms(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Form>> {
        let r = request(ctx)?;
        let rows = form::Entity::find()
            .filter(form::Column::WorkspaceId.eq(r.principal.workspace_id))
            .order_by_desc(form::Column::CreatedAt)
            .all(r.db)
            .await?;
        Ok(rows.into_iter().map(Form).collect())
    }
    /// Landing pages, by slug.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsRead)")]
    async fn landing_pages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LandingPage>> {
        let r = request(ctx)?;
        let rows = landing_page::Entity::find()
            .filter(landing_page::Column::WorkspaceId.eq(r.principal.workspace_id))
            .order_by_asc(landing_page::Column::Slug)
            .all(r.db)
            .await?;
        Ok(rows.into_iter().map(LandingPage).collect())
    }
    /// Tracked links, newest first.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsRead)")]
    async fn tracked_links(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TrackedLink>> {
        let r = request(ctx)?;
        let rows = tracked_link::Entity::find()
            .filter(tracked_link::Column::WorkspaceId.eq(r.principal.workspace_id))
            .order_by_desc(tracked_link::Column::CreatedAt)
            .all(r.db)
            .await?;
        Ok(rows.into_iter().map(TrackedLink).collect())
    }
}

#[derive(Default)]
pub struct WebMutation;

impl WebMutation {
    async fn save_form(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        input: FormInput,
    ) -> async_graphql::Result<FormPayload> {
        let r = request(ctx)?;
        let definition = FormDefinition {
            name: input.name,
            fields: input
                .fields
                .into_iter()
                .map(|f| FormField {
                    key: f.key,
                    label: f.label,
                    kind: FieldKind::from(f.field_type),
                    maps_to: f.maps_to,
                    required: f.required,
                    options: f.options,
                })
                .collect(),
            consents: input
                .consents
                .into_iter()
                .map(|c| FormConsent {
                    channel: c.channel.as_str().to_owned(),
                    label: c.label,
                    required: c.required,
                })
                .collect(),
            success_message: input.success_message,
            redirect_url: input.redirect_url,
            notify_owner: input.notify_owner,
        };
        let saved = voxtur_core::web::forms::save(
            r.db,
            r.principal.workspace_id,
            id.as_ref().map(|id| id.as_str()),
            definition,
        )
        .await;
        let (form, user_errors) = into_payload(saved)?;
        Ok(FormPayload {
            form: form.map(Form),
            user_errors,
        })
    }

    async fn save_page(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        input: LandingPageInput,
    ) -> async_graphql::Result<LandingPagePayload> {
        let r = request(ctx)?;
        let content = PageContent {
            slug: input.slug,
            title: input.title,
            body_html: input.body_html,
            form_id: input.form_id.map(|id| id.0),
            published: input.published,
            css: input.css,
            frame_ancestors: input.frame_ancestors,
        };
        let saved = voxtur_core::web::pages::save(
            r.db,
            r.principal.workspace_id,
            id.as_ref().map(|id| id.as_str()),
            content,
        )
        .await;
        let (page, user_errors) = into_payload(saved)?;
        Ok(LandingPagePayload {
            landing_page: page.map(LandingPage),
            user_errors,
        })
    }
}

#[Object]
impl WebMutation {
    /// Creates a form.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsWrite)")]
    async fn form_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The form.")] input: FormInput,
    ) -> async_graphql::Result<FormPayload> {
        self.save_form(ctx, None, input).await
    }

    /// Replaces a form's definition.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsWrite)")]
    async fn form_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The form's id.")] id: ID,
        #[graphql(desc = "The new definition.")] input: FormInput,
    ) -> async_graphql::Result<FormPayload> {
        self.save_form(ctx, Some(id), input).await
    }

    /// Creates a landing page (its HTML is sanitized).
    #[graphql(guard = "ScopeGuard(Scope::CampaignsWrite)")]
    async fn landing_page_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The page.")] input: LandingPageInput,
    ) -> async_graphql::Result<LandingPagePayload> {
        self.save_page(ctx, None, input).await
    }

    /// Replaces a landing page's content.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsWrite)")]
    async fn landing_page_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The page's id.")] id: ID,
        #[graphql(desc = "The new content.")] input: LandingPageInput,
    ) -> async_graphql::Result<LandingPagePayload> {
        self.save_page(ctx, Some(id), input).await
    }

    /// Creates a tracked link with a new short code.
    #[graphql(guard = "ScopeGuard(Scope::CampaignsWrite)")]
    async fn tracked_link_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The link.")] input: TrackedLinkInput,
    ) -> async_graphql::Result<TrackedLinkPayload> {
        let r = request(ctx)?;
        let link = LinkTarget {
            target_url: input.target_url,
            campaign: input.campaign,
            utm_source: input.utm_source,
            utm_medium: input.utm_medium,
            utm_campaign: input.utm_campaign,
        };
        let (link, user_errors) =
            into_payload(voxtur_core::web::links::create(r.db, r.principal.workspace_id, link).await)?;
        Ok(TrackedLinkPayload {
            tracked_link: link.map(TrackedLink),
            user_errors,
        })
    }
}
