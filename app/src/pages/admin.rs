//! Users and API keys, for admins: add people, change their role, disable and enable
//! them; create keys (shown once) and revoke them. Every change is a POST server
//! function; the service checks `Action::Administer` whoever calls it.

use domain::access::{Action, Role, Scope};
use domain::model::{CreatedKey, KeyInfo, UserInfo};
use domain::vocabulary::WebhookEvent;
use leptos::prelude::*;

use crate::error::AppError;
use crate::widgets::{ErrorNote, Time, loading};

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<Role, AppError> {
    Role::parse(role.trim()).ok_or_else(|| {
        AppError::invalid(format!("'{role}' is not a role. Pick viewer, editor, publisher or admin from the list."))
    })
}

/// Form fields arrive as `Some("")` when left empty.
#[cfg(feature = "ssr")]
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[server(endpoint = "console/list_users")]
pub async fn list_users() -> Result<Vec<UserInfo>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.list_users(&who).await?)
}

#[server(endpoint = "console/add_user")]
pub async fn add_user(username: String, role: String, password: String) -> Result<UserInfo, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let role = parse_role(&role)?;
    Ok(registry.add_user(&who, username.trim(), role, Some(password)).await?)
}

/// Changes a person's role (`role`) or disables/enables them (`disabled`).
#[server(endpoint = "console/update_user")]
pub async fn update_user(username: String, role: Option<String>, disabled: Option<bool>) -> Result<UserInfo, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let role = given(role).map(|r| parse_role(&r)).transpose()?;
    if role.is_none() && disabled.is_none() {
        return Err(AppError::invalid("Nothing to change: pick a role, or disable or enable the person."));
    }
    let change = service::UserChange { role, disabled, password: None };
    Ok(registry.update_user(&who, &username, change).await?)
}

#[server(endpoint = "console/list_keys")]
pub async fn list_keys() -> Result<Vec<KeyInfo>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.list_keys(&who).await?)
}

#[server(endpoint = "console/create_key")]
pub async fn create_key(name: String, scope: String, user: Option<String>) -> Result<CreatedKey, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let scope = Scope::parse(scope.trim()).ok_or_else(|| {
        AppError::invalid(format!("'{scope}' is not a scope. Pick app, read, write or admin from the list."))
    })?;
    let user = given(user);
    Ok(registry.create_key(&who, name.trim(), scope, user.as_deref()).await?)
}

#[server(endpoint = "console/revoke_key")]
pub async fn revoke_key(name: String) -> Result<KeyInfo, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.revoke_key(&who, &name).await?)
}

/// A provider with its prices, for the admin page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProviderPrices {
    pub provider: domain::eval::Provider,
    pub prices: Vec<domain::eval::ModelPrice>,
}

#[server(endpoint = "console/list_providers")]
pub async fn list_providers() -> Result<Vec<ProviderPrices>, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let mut out = Vec::new();
    for provider in registry.providers(&who).await? {
        let prices = registry.prices(&who, &provider.name).await?;
        out.push(ProviderPrices { provider, prices });
    }
    Ok(out)
}

#[server(endpoint = "console/save_provider")]
pub async fn save_provider(
    name: String,
    kind: String,
    base_url: String,
    api_key_env: Option<String>,
) -> Result<domain::eval::Provider, AppError> {
    use domain::eval::ProviderKind;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let kind =
        ProviderKind::parse(&kind).ok_or_else(|| AppError::invalid("Pick the kind of provider from the list."))?;
    let provider = domain::eval::Provider {
        name: name.trim().to_owned(),
        kind,
        base_url: base_url.trim().to_owned(),
        api_key_env: given(api_key_env),
    };
    Ok(registry.put_provider(&who, provider).await?)
}

#[server(endpoint = "console/save_price")]
pub async fn save_price(
    provider: String,
    model: String,
    input: String,
    output: String,
) -> Result<domain::eval::ModelPrice, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let dollars = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| AppError::invalid("Prices are numbers of dollars per million tokens, like 0.15."))
    };
    let price = domain::eval::ModelPrice {
        model: model.trim().to_owned(),
        input_per_mtok: dollars(&input)?,
        output_per_mtok: dollars(&output)?,
    };
    Ok(registry.put_price(&who, &provider, price).await?)
}

/// A webhook with its latest deliveries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WebhookLog {
    pub webhook: domain::model::Webhook,
    pub deliveries: Vec<domain::model::WebhookDelivery>,
}

#[server(endpoint = "console/list_webhooks")]
pub async fn list_webhooks() -> Result<Vec<WebhookLog>, AppError> {
    /// Deliveries shown per webhook.
    const SHOWN: usize = 10;
    let (who, registry) = crate::auth::ssr::caller().await?;
    let mut out = Vec::new();
    for webhook in registry.webhooks(&who).await? {
        let mut deliveries = registry.webhook_deliveries(&who, &webhook.id).await?;
        deliveries.truncate(SHOWN);
        out.push(WebhookLog { webhook, deliveries });
    }
    Ok(out)
}

/// `events` arrives as one form field per ticked box.
#[server(endpoint = "console/add_webhook")]
pub async fn add_webhook(url: String, events: Option<Vec<String>>) -> Result<domain::model::CreatedWebhook, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    let req = domain::model::NewWebhook { url: url.trim().to_owned(), events: events.unwrap_or_default() };
    Ok(registry.create_webhook(&who, req).await?)
}

#[server(endpoint = "console/remove_webhook")]
pub async fn remove_webhook(id: String) -> Result<domain::model::Webhook, AppError> {
    let (who, registry) = crate::auth::ssr::caller().await?;
    Ok(registry.delete_webhook(&who, &id).await?)
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let me = crate::auth::me();
    if !me.can(Action::Administer) {
        return view! {
            <section class="admin">
                <h1>"Users and keys"</h1>
                <p class="empty">"Only administrators can manage users and keys."</p>
                <p class="hint">"Ask an administrator if you need an account, a different role or an API key."</p>
            </section>
        }
        .into_any();
    }
    view! {
        <section class="admin">
            <h1>"Users and keys"</h1>
            <AdminPanels me=me.username.clone()/>
            <ProvidersPanel/>
            <WebhooksPanel/>
        </section>
    }
    .into_any()
}

/// People and keys: an island (runs in the browser), so actions refresh the lists.
#[island(lazy)]
fn AdminPanels(me: String) -> impl IntoView {
    crate::mark_hydrated();
    let add = ServerAction::<AddUser>::new();
    let update = ServerAction::<UpdateUser>::new();
    let users = Resource::new(move || (add.version().get(), update.version().get()), |_| list_users());
    let create = ServerAction::<CreateKey>::new();
    let revoke = ServerAction::<RevokeKey>::new();
    let keys = Resource::new(move || (create.version().get(), revoke.version().get()), |_| list_keys());
    view! {
        <UsersPanel users add update me/>
        <KeysPanel keys users create revoke/>
    }
}

#[component]
fn UsersPanel(
    users: Resource<Result<Vec<UserInfo>, AppError>>,
    add: ServerAction<AddUser>,
    update: ServerAction<UpdateUser>,
    me: String,
) -> impl IntoView {
    let add_form = NodeRef::<leptos::html::Form>::new();
    // A person added: empty the form (the password above all).
    Effect::new(move |_| {
        if let Some(Ok(_)) = add.value().get()
            && let Some(form) = add_form.get_untracked()
        {
            form.reset();
        }
    });
    view! {
        <section class="panel users" aria-labelledby="users-title">
            <h2 id="users-title">"People"</h2>
            <div class="notice" aria-live="polite">
                {move || update.value().get().map(|result| match result {
                    Ok(user) => {
                        let status = if user.disabled { "can no longer sign in" } else { "can sign in" };
                        view! {
                            <p class="success">{format!("Saved: {} is {} and {status}.", user.username, user.role)}</p>
                        }.into_any()
                    }
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
            <Transition fallback=|| loading("people")>
                {move || {
                    let me = me.clone();
                    Suspend::new(async move {
                        match users.await {
                            Ok(list) => users_table(list, update, me).into_any(),
                            Err(error) => view! { <ErrorNote error/> }.into_any(),
                        }
                    })
                }}
            </Transition>
            <h3 id="add-user-title">"Add a person"</h3>
            <ActionForm action=add node_ref=add_form attr:class="add-user" attr:aria-labelledby="add-user-title">
                <div class="field">
                    <label for="new-username">"Username"</label>
                    <input id="new-username" name="username" required maxlength="64" autocomplete="off"
                        aria-describedby="new-username-hint"/>
                    <p id="new-username-hint" class="hint">"Letters, digits, '_', '.', '@' or '-'."</p>
                </div>
                <div class="field">
                    <label for="new-role">"Role"</label>
                    <select id="new-role" name="role">
                        {Role::ALL.into_iter().map(|r| view! {
                            <option value=r.as_str() selected=r == Role::Viewer>{role_text(r)}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="new-password">"Password"</label>
                    <input id="new-password" name="password" type="password" required minlength="8"
                        autocomplete="new-password" aria-describedby="new-password-hint"/>
                    <p id="new-password-hint" class="hint">"At least 8 characters. Tell the person in person, not by email."</p>
                </div>
                <button type="submit" class="primary" disabled=move || add.pending().get()>"Add"</button>
            </ActionForm>
            <div class="notice" aria-live="polite">
                {move || add.value().get().map(|result| match result {
                    Ok(user) => view! {
                        <p class="success">{format!("Added {} as {}. They can sign in now.", user.username, user.role)}</p>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
        </section>
    }
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer: reads prompts and the audit log",
        Role::Editor => "editor: also saves versions, moves unprotected labels",
        Role::Publisher => "publisher: also moves protected labels such as stable",
        Role::Admin => "admin: also manages people and keys",
    }
}

fn users_table(list: Vec<UserInfo>, update: ServerAction<UpdateUser>, me: String) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="empty">"No people yet. Add the first one below."</p> }.into_any();
    }
    view! {
        <table class="user-table">
            <caption class="visually-hidden">"People who can sign in to the console, with their role and status"</caption>
            <thead>
                <tr>
                    <th scope="col">"Username"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Change"</th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|u| {
                    let status = if u.disabled { "disabled" } else { "active" };
                    let actions = if u.username == me {
                        view! { <span class="hint">"This is you. Another admin can change your account."</span> }.into_any()
                    } else {
                        user_actions(&u, update).into_any()
                    };
                    view! {
                        <tr class="user-row">
                            <th scope="row" class="name">{u.username.clone()}</th>
                            <td>{u.role.clone()}</td>
                            <td><span class=format!("status status-{status}")>{status}</span></td>
                            <td><Time at=u.created_at.clone()/></td>
                            <td class="row-actions">{actions}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

fn user_actions(u: &UserInfo, update: ServerAction<UpdateUser>) -> impl IntoView {
    let (username, username2) = (u.username.clone(), u.username.clone());
    let select_id = format!("role-{}", u.username);
    let select_label = format!("New role for {}", u.username);
    let current = u.role.clone();
    let (toggle_value, toggle_text, toggle_class) =
        if u.disabled { ("false", "Enable", "") } else { ("true", "Disable", "danger") };
    view! {
        <ActionForm action=update attr:class="inline">
            <input type="hidden" name="username" value=username/>
            <label for=select_id.clone() class="visually-hidden">{select_label}</label>
            <select id=select_id name="role">
                {Role::ALL.into_iter().map(|r| view! {
                    <option value=r.as_str() selected=current == r.as_str()>{r.as_str()}</option>
                }).collect_view()}
            </select>
            <button type="submit">"Change role"</button>
        </ActionForm>
        <ActionForm action=update attr:class="inline">
            <input type="hidden" name="username" value=username2/>
            <input type="hidden" name="disabled" value=toggle_value/>
            <button type="submit" class=toggle_class>{toggle_text}</button>
        </ActionForm>
    }
}

#[component]
fn KeysPanel(
    keys: Resource<Result<Vec<KeyInfo>, AppError>>,
    users: Resource<Result<Vec<UserInfo>, AppError>>,
    create: ServerAction<CreateKey>,
    revoke: ServerAction<RevokeKey>,
) -> impl IntoView {
    // The form is drawn again when the list of people changes; what was typed stays.
    let name = RwSignal::new(String::new());
    let scope = RwSignal::new("read".to_owned());
    let acts_as = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(_)) = create.value().get() {
            name.set(String::new());
        }
    });
    view! {
        <section class="panel keys" aria-labelledby="keys-title">
            <h2 id="keys-title">"API keys"</h2>
            <div class="notice" aria-live="polite">
                {move || revoke.value().get().map(|result| match result {
                    Ok(key) => view! {
                        <p class="success">{format!("Revoked {}. Programs that use it are refused from now on.", key.name)}</p>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
            <Transition fallback=|| loading("API keys")>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) => keys_table(list, revoke).into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
            <h3 id="create-key-title">"Create a key"</h3>
            <Transition fallback=|| loading("the form")>
                {move || Suspend::new(async move {
                    let people: Vec<String> = users
                        .await
                        .map(|list| list.into_iter().filter(|u| !u.disabled).map(|u| u.username).collect())
                        .unwrap_or_default();
                    view! {
                        <ActionForm action=create attr:class="create-key" attr:aria-labelledby="create-key-title">
                            <div class="field">
                                <label for="key-name">"Name"</label>
                                <input id="key-name" name="name" required maxlength="64" autocomplete="off"
                                    placeholder="checkout-service" aria-describedby="key-name-hint" bind:value=name/>
                                <p id="key-name-hint" class="hint">"Say what uses it, e.g. the service's name."</p>
                            </div>
                            <div class="field">
                                <label for="key-scope">"Scope"</label>
                                <select id="key-scope" name="scope" bind:value=scope>
                                    {Scope::ALL.into_iter().map(|s| view! {
                                        <option value=s.as_str() selected=scope.get_untracked() == s.as_str()>
                                            {scope_text(s)}
                                        </option>
                                    }).collect_view()}
                                </select>
                            </div>
                            <div class="field">
                                <label for="key-user">"Acts as (optional)"</label>
                                <select id="key-user" name="user" bind:value=acts_as aria-describedby="key-user-hint">
                                    <option value="">"Nobody: the key has only its scope"</option>
                                    {people.into_iter().map(|p| {
                                        let selected = acts_as.get_untracked() == p;
                                        view! { <option value=p.clone() selected=selected>{p.clone()}</option> }
                                    }).collect_view()}
                                </select>
                                <p id="key-user-hint" class="hint">
                                    "A key that acts as a person can do no more than that person's role allows, \
                                     and stops working when the person is disabled."
                                </p>
                            </div>
                            <button type="submit" class="primary" disabled=move || create.pending().get()>"Create key"</button>
                        </ActionForm>
                    }
                })}
            </Transition>
            <div class="notice" aria-live="polite">
                {move || create.value().get().map(|result| match result {
                    Ok(key) => {
                        let acts_as = key.user.clone().map(|u| format!(", acts as {u}")).unwrap_or_default();
                        view! {
                            <div class="new-key-box">
                                <p><strong>"Copy this key now: it will not be shown again."</strong></p>
                                <p>{format!("Key {} ({} scope{acts_as}):", key.name, key.scope.as_str())}</p>
                                <code class="new-key">{key.key.clone()}</code>
                            </div>
                        }.into_any()
                    }
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
        </section>
    }
}

fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::App => "app: what a running application needs (resolve, render, send generations and scores)",
        Scope::Read => "read: resolve, render and read everything (history, audit, production figures)",
        Scope::Write => "write: also save versions and move unprotected labels",
        Scope::Admin => "admin: everything, protected labels, people and keys included",
    }
}

fn keys_table(list: Vec<KeyInfo>, revoke: ServerAction<RevokeKey>) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="empty">"No API keys yet. Create one below for each program that reads prompts."</p> }
            .into_any();
    }
    view! {
        <table class="key-table">
            <caption class="visually-hidden">"API keys, their scope and whether they still work"</caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Prefix"</th>
                    <th scope="col">"Scope"</th>
                    <th scope="col">"Acts as"</th>
                    <th scope="col">"Created by"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col"><span class="visually-hidden">"Revoke"</span></th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|k| {
                    let status = match &k.revoked_at {
                        Some(at) => view! { <span class="status status-revoked">"revoked "<Time at=at.clone()/></span> }.into_any(),
                        None => view! { <span class="status status-active">"active"</span> }.into_any(),
                    };
                    let button = k.revoked_at.is_none().then(|| revoke_button(k.name.clone(), revoke));
                    view! {
                        <tr class="key-row">
                            <th scope="row" class="name">{k.name.clone()}</th>
                            <td><code>{format!("{}…", k.prefix)}</code></td>
                            <td>{k.scope.clone()}</td>
                            <td>{k.user.clone().unwrap_or_else(|| "nobody".into())}</td>
                            <td>{k.created_by.clone()}</td>
                            <td><Time at=k.created_at.clone()/></td>
                            <td>{status}</td>
                            <td class="row-actions">{button}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// "Revoke", then "Confirm revoke": the second click revokes, "Cancel" steps back. The
/// button is the same element throughout, so focus stays on it.
fn revoke_button(name: String, revoke: ServerAction<RevokeKey>) -> impl IntoView {
    let confirming = RwSignal::new(false);
    view! {
        <button type="button" class="danger"
            on:click=move |_| {
                if confirming.get_untracked() {
                    confirming.set(false);
                    revoke.dispatch(RevokeKey { name: name.clone() });
                } else {
                    confirming.set(true);
                }
            }>
            {move || if confirming.get() { "Confirm revoke" } else { "Revoke" }}
        </button>
        {move || confirming.get().then(|| view! {
            <button type="button" on:click=move |_| confirming.set(false)>"Cancel"</button>
        })}
    }
}

/// Model providers for evaluations and the price of their models. The API key of a
/// provider is never entered here: only the name of the environment variable that holds
/// it where promptledger runs.
#[island(lazy)]
fn ProvidersPanel() -> impl IntoView {
    crate::mark_hydrated();
    let save = ServerAction::<SaveProvider>::new();
    let price = ServerAction::<SavePrice>::new();
    let providers = Resource::new(move || (save.version().get(), price.version().get()), |_| list_providers());
    view! {
        <section class="panel providers" aria-labelledby="providers-title">
            <h2 id="providers-title">"Model providers and prices"</h2>
            <Transition fallback=|| loading("providers")>
                {move || Suspend::new(async move {
                    match providers.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="empty">"No provider yet. Add one below so people can run evaluations."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <table>
                                <caption class="visually-hidden">"Model providers, their models' prices"</caption>
                                <thead><tr><th scope="col">"Provider"</th><th scope="col">"Kind"</th><th scope="col">"Address"</th>
                                    <th scope="col">"Key from"</th><th scope="col">"Prices ($ per million tokens in / out)"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|p| view! {
                                        <tr>
                                            <th scope="row">{p.provider.name.clone()}</th>
                                            <td>{format!("{:?}", p.provider.kind).to_lowercase()}</td>
                                            <td><code>{p.provider.base_url.clone()}</code></td>
                                            <td>{p.provider.api_key_env.clone().map(|v| format!("${v}")).unwrap_or_else(|| "no key".into())}</td>
                                            <td>{p.prices.iter().map(|m| format!("{}: {} / {}", m.model, m.input_per_mtok, m.output_per_mtok)).collect::<Vec<_>>().join(", ")}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
            <h3 id="add-provider-title">"Add or change a provider"</h3>
            <ActionForm action=save attr:class="add-provider" attr:aria-labelledby="add-provider-title">
                <div class="field">
                    <label for="provider-name">"Provider name"</label>
                    <input id="provider-name" name="name" required maxlength="36" placeholder="openai"/>
                </div>
                <div class="field">
                    <label for="provider-kind">"Kind"</label>
                    <select id="provider-kind" name="kind">
                        {domain::vocabulary::ProviderKind::ALL
                            .iter()
                            .map(|k| view! { <option value=k.as_str()>{k.words()}</option> })
                            .collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="provider-url">"Address"</label>
                    <input id="provider-url" name="base_url" required placeholder="https://api.openai.com/v1"/>
                </div>
                <div class="field">
                    <label for="provider-key">"Environment variable with the API key"</label>
                    <input id="provider-key" name="api_key_env" placeholder="OPENAI_API_KEY" aria-describedby="provider-key-hint"/>
                    <p id="provider-key-hint" class="hint">"The name of the variable only; never paste the key itself."</p>
                </div>
                <button type="submit" class="primary" disabled=move || save.pending().get()>"Save the provider"</button>
            </ActionForm>
            <div class="notice" aria-live="polite">
                {move || save.value().get().map(|result| match result {
                    Ok(p) => view! { <p class="success">{format!("Saved {}: its models are named {}/MODEL.", p.name, p.name)}</p> }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
            <h3 id="price-title">"Set a model's price"</h3>
            <ActionForm action=price attr:class="set-price" attr:aria-labelledby="price-title">
                <div class="field">
                    <label for="price-provider">"Provider"</label>
                    <input id="price-provider" name="provider" required placeholder="openai"/>
                </div>
                <div class="field">
                    <label for="price-model">"Model"</label>
                    <input id="price-model" name="model" required placeholder="gpt-4o-mini"/>
                </div>
                <div class="field">
                    <label for="price-input">"Input, $ per million tokens"</label>
                    <input id="price-input" name="input" required inputmode="decimal" placeholder="0.15"/>
                </div>
                <div class="field">
                    <label for="price-output">"Output, $ per million tokens"</label>
                    <input id="price-output" name="output" required inputmode="decimal" placeholder="0.60"/>
                </div>
                <button type="submit" class="primary" disabled=move || price.pending().get()>"Save the price"</button>
            </ActionForm>
            <div class="notice" aria-live="polite">
                {move || price.value().get().map(|result| match result {
                    Ok(p) => view! { <p class="success">{format!("Saved the price of {}.", p.model)}</p> }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
        </section>
    }
}

/// Webhooks: endpoints that get signed events, and the log of what was delivered.
#[island(lazy)]
fn WebhooksPanel() -> impl IntoView {
    crate::mark_hydrated();
    let add = ServerAction::<AddWebhook>::new();
    let remove = ServerAction::<RemoveWebhook>::new();
    let hooks = Resource::new(move || (add.version().get(), remove.version().get()), |_| list_webhooks());
    view! {
        <section class="panel webhooks" aria-labelledby="webhooks-title">
            <h2 id="webhooks-title">"Webhooks"</h2>
            <Transition fallback=|| loading("webhooks")>
                {move || Suspend::new(async move {
                    match hooks.await {
                        Ok(list) if list.is_empty() => view! { <p class="empty">"No webhook yet. Add one below to tell other systems about changes."</p> }.into_any(),
                        Ok(list) => list.into_iter().map(|h| {
                            let id = h.webhook.id.clone();
                            view! {
                                <div class="webhook">
                                    <h3><code>{h.webhook.url.clone()}</code> {(!h.webhook.active).then_some(" (removed)")}</h3>
                                    <p class="meta">{h.webhook.events.join(", ")}</p>
                                    {h.webhook.active.then(|| view! {
                                        <button type="button" on:click=move |_| { remove.dispatch(RemoveWebhook { id: id.clone() }); }>"Remove"</button>
                                    })}
                                    {if h.deliveries.is_empty() {
                                        view! { <p class="hint">"Nothing delivered yet."</p> }.into_any()
                                    } else {
                                        view! {
                                            <table class="deliveries">
                                                <caption class="visually-hidden">{format!("Deliveries to {}", h.webhook.url)}</caption>
                                                <thead><tr><th scope="col">"Event"</th><th scope="col">"Status"</th><th scope="col" class="num">"Attempts"</th><th scope="col">"Answer"</th><th scope="col">"When"</th></tr></thead>
                                                <tbody>
                                                    {h.deliveries.into_iter().map(|d| view! {
                                                        <tr>
                                                            <td>{d.event}</td>
                                                            <td>{d.status}</td>
                                                            <td class="num">{d.attempts}</td>
                                                            <td>{d.response_code.map(|c| c.to_string()).or(d.last_error).unwrap_or_default()}</td>
                                                            <td><Time at=d.created_at/></td>
                                                        </tr>
                                                    }).collect_view()}
                                                </tbody>
                                            </table>
                                        }.into_any()
                                    }}
                                </div>
                            }
                        }).collect_view().into_any(),
                        Err(error) => view! { <ErrorNote error/> }.into_any(),
                    }
                })}
            </Transition>
            <h3 id="add-webhook-title">"Add a webhook"</h3>
            <ActionForm action=add attr:class="add-webhook" attr:aria-labelledby="add-webhook-title">
                <div class="field">
                    <label for="webhook-url">"Address that receives the events"</label>
                    <input id="webhook-url" name="url" required placeholder="https://ci.example.com/promptledger"/>
                </div>
                <fieldset>
                    <legend>"Send when"</legend>
                    {WebhookEvent::ALL.iter().map(|e| view! {
                        <label class="inline"><input type="checkbox" name="events[]" value=e.as_str()/> " " {e.words()}</label>
                    }).collect_view()}
                </fieldset>
                <button type="submit" class="primary" disabled=move || add.pending().get()>"Add the webhook"</button>
            </ActionForm>
            <div class="notice" aria-live="polite">
                {move || add.value().get().map(|result| match result {
                    Ok(created) => view! {
                        <p class="success">"Added. Its signing secret, shown only now: " <code class="new-secret">{created.secret}</code>
                            ". The receiver checks the X-Promptledger-Signature header with it."</p>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </div>
        </section>
    }
}
