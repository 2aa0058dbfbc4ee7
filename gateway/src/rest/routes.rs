//! The one table of REST routes: HTTP method and path template, the `cartella.v1` method it
//! calls, which request field the JSON body fills and which fields the path parameters fill.
//! Everything else is derived from the message descriptors: the query parameters of a route
//! without a body are the scalar fields of its request message (nested `Page` flattened to
//! `page_size`, `page_token`), the response is the method's output message, and the OpenAPI
//! document is generated from this table and the same descriptors.

/// HTTP method of a route. Only what the table uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
        }
    }
}

/// One REST operation.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub verb: Verb,
    /// Template under `/api/v1`, axum syntax (`/persone/{id}`).
    pub path: &'static str,
    /// Fully qualified gRPC method: `package.Service.Method`.
    pub rpc: &'static str,
    /// The request field the JSON body becomes; `None` = no body, query parameters instead.
    pub body: Option<&'static str>,
    /// Path parameter → dotted field path in the request message it fills.
    pub path_params: &'static [(&'static str, &'static str)],
    /// OpenAPI tag grouping the operation.
    pub tag: &'static str,
}

const fn r(
    verb: Verb,
    path: &'static str,
    rpc: &'static str,
    body: Option<&'static str>,
    path_params: &'static [(&'static str, &'static str)],
    tag: &'static str,
) -> Route {
    Route { verb, path, rpc, body, path_params, tag }
}

use Verb::{Get, Post, Put};

/// Full name of a `CartellaService` method.
macro_rules! cs {
    ($m:literal) => {
        concat!("cartella.v1.CartellaService.", $m)
    };
}

/// Full name of a `DeliveryService` method.
macro_rules! ds {
    ($m:literal) => {
        concat!("cartella.v1.DeliveryService.", $m)
    };
}

/// Full name of a `RevisioneService` method.
macro_rules! rs {
    ($m:literal) => {
        concat!("cartella.v1.RevisioneService.", $m)
    };
}

/// Every CartellaService, StatsService and RevisioneService operation, and those of the other
/// services the console uses. Records hanging off a cartella are created in their own
/// collection (the body names the cartella) and listed under it.
pub const ROUTES: &[Route] = &[
    // Persone
    r(Post, "/persone", cs!("CreatePersona"), Some("persona"), &[], "persone"),
    r(Get, "/persone", cs!("ListPersone"), None, &[], "persone"),
    r(Get, "/persone/search", cs!("SearchPersone"), None, &[], "persone"),
    r(Get, "/persone/{id}", cs!("GetPersona"), None, &[("id", "id")], "persone"),
    r(Put, "/persone/{id}", cs!("UpdatePersona"), Some("persona"), &[("id", "persona.meta.id")], "persone"),
    // Revisioni (RevisioneService, role anagrafe): pairs of personas linkage left undecided,
    // decided as the same person (merged) or two people; merges made directly and undone.
    r(Get, "/revisioni", rs!("ListRevisioni"), None, &[], "revisioni"),
    r(Get, "/revisioni/{id}", rs!("GetRevisione"), None, &[("id", "id")], "revisioni"),
    r(Post, "/revisioni/{id}/decisione", rs!("DecideRevisione"), Some("decisione"), &[("id", "id")], "revisioni"),
    r(Post, "/fusioni", rs!("CreateFusione"), Some("fusione"), &[], "revisioni"),
    r(Get, "/fusioni", rs!("ListFusioni"), None, &[], "revisioni"),
    r(Post, "/fusioni/{id}/annullamento", rs!("UndoFusione"), None, &[("id", "id")], "revisioni"),
    // Nuclei
    r(Post, "/nuclei", cs!("CreateNucleo"), Some("nucleo"), &[], "nuclei"),
    r(Get, "/nuclei", cs!("ListNuclei"), None, &[], "nuclei"),
    r(Get, "/nuclei/{id}", cs!("GetNucleo"), None, &[("id", "id")], "nuclei"),
    r(Put, "/nuclei/{id}", cs!("UpdateNucleo"), Some("nucleo"), &[("id", "nucleo.meta.id")], "nuclei"),
    // Accessi
    r(Post, "/accessi", cs!("CreateAccesso"), Some("accesso"), &[], "accessi"),
    r(Get, "/accessi", cs!("ListAccessi"), None, &[], "accessi"),
    r(Get, "/accessi/{id}", cs!("GetAccesso"), None, &[("id", "id")], "accessi"),
    r(Put, "/accessi/{id}", cs!("UpdateAccesso"), Some("accesso"), &[("id", "accesso.meta.id")], "accessi"),
    // Cartelle
    r(Post, "/cartelle", cs!("CreateCartella"), Some("cartella"), &[], "cartelle"),
    r(Get, "/cartelle", cs!("ListCartelle"), None, &[], "cartelle"),
    r(Get, "/cartelle/{id}", cs!("GetCartella"), None, &[("id", "id")], "cartelle"),
    r(Put, "/cartelle/{id}", cs!("UpdateCartella"), Some("cartella"), &[("id", "cartella.meta.id")], "cartelle"),
    // Diario
    r(Post, "/diario", cs!("CreateDiarioEntry"), Some("entry"), &[], "diario"),
    r(Get, "/diario/{id}", cs!("GetDiarioEntry"), None, &[("id", "id")], "diario"),
    r(Put, "/diario/{id}", cs!("UpdateDiarioEntry"), Some("entry"), &[("id", "entry.meta.id")], "diario"),
    r(Get, "/cartelle/{cartella_id}/diario", cs!("ListDiario"), None, &[("cartella_id", "cartella_id")], "diario"),
    // Valutazioni
    r(Post, "/valutazioni", cs!("CreateValutazione"), Some("valutazione"), &[], "valutazioni"),
    r(Get, "/valutazioni/{id}", cs!("GetValutazione"), None, &[("id", "id")], "valutazioni"),
    r(Put, "/valutazioni/{id}", cs!("UpdateValutazione"), Some("valutazione"), &[("id", "valutazione.meta.id")], "valutazioni"),
    r(Get, "/cartelle/{cartella_id}/valutazioni", cs!("ListValutazioni"), None, &[("cartella_id", "cartella_id")], "valutazioni"),
    // PAI
    r(Post, "/pai", cs!("CreatePai"), Some("pai"), &[], "pai"),
    r(Get, "/pai/{id}", cs!("GetPai"), None, &[("id", "id")], "pai"),
    r(Put, "/pai/{id}", cs!("UpdatePai"), Some("pai"), &[("id", "pai.meta.id")], "pai"),
    r(Get, "/cartelle/{cartella_id}/pai", cs!("ListPai"), None, &[("cartella_id", "cartella_id")], "pai"),
    // Prestazioni: listed across cartelle too (by codice or ufficio), so the list is top level.
    r(Post, "/prestazioni", cs!("CreatePrestazione"), Some("prestazione"), &[], "prestazioni"),
    r(Get, "/prestazioni", cs!("ListPrestazioni"), None, &[], "prestazioni"),
    r(Get, "/prestazioni/{id}", cs!("GetPrestazione"), None, &[("id", "id")], "prestazioni"),
    r(Put, "/prestazioni/{id}", cs!("UpdatePrestazione"), Some("prestazione"), &[("id", "prestazione.meta.id")], "prestazioni"),
    // Its INPS SIUSS flows, their esiti and what still blocks it (SiussService).
    r(Get, "/prestazioni/{id}/siuss", "cartella.v1.SiussService.GetStatoSiuss", None, &[("id", "id")], "prestazioni"),
    // The ente's INPS SIUSS flows by state, with esiti and what their codes mean (administrators).
    r(Get, "/siuss/flussi", "cartella.v1.SiussService.ListFlussi", None, &[], "siuss"),
    // Referrals from other systems (e.g. a protected discharge), recorded as an accesso.
    r(Post, "/segnalazioni", cs!("RecordSegnalazione"), Some("segnalazione"), &[], "accessi"),
    // Condivisioni
    r(Post, "/condivisioni", cs!("CreateCondivisione"), Some("condivisione"), &[], "condivisioni"),
    r(Post, "/condivisioni/{id}/revoca", cs!("RevokeCondivisione"), None, &[("id", "id")], "condivisioni"),
    r(Get, "/cartelle/{cartella_id}/condivisioni", cs!("ListCondivisioni"), None, &[("cartella_id", "cartella_id")], "condivisioni"),
    // Statistiche (StatsService)
    r(Get, "/statistiche/riepilogo", "cartella.v1.StatsService.GetRiepilogo", None, &[], "statistiche"),
    // JSON, or CSV / XLSX with `?format=csv|xlsx` or `Accept` (see `rest::download`).
    r(Get, "/statistiche/tabella", "cartella.v1.StatsService.GetTabella", None, &[], "statistiche"),
    r(Get, "/statistiche/catalogo", "cartella.v1.StatsService.GetCatalogo", None, &[], "statistiche"),
    // Outbound delivery (DeliveryService): adapters, deliveries, dead letters, replay.
    r(Get, "/adapters", ds!("ListAdapters"), None, &[], "deliveries"),
    r(Post, "/adapters/{adapter}/replay", ds!("Replay"), None, &[("adapter", "adapter")], "deliveries"),
    r(Get, "/deliveries", ds!("ListDeliveries"), None, &[], "deliveries"),
    r(Get, "/deliveries/{id}", ds!("GetDelivery"), None, &[("id", "id")], "deliveries"),
    r(Post, "/deliveries/{id}/retry", ds!("RetryDelivery"), None, &[("id", "id")], "deliveries"),
    r(Post, "/deliveries/{id}/discard", ds!("DiscardDelivery"), None, &[("id", "id")], "deliveries"),
    // Registro degli accessi (AuditService): who read a person's records, when and why (DPO).
    r(Get, "/registro-accessi", "cartella.v1.AuditService.ListRegistroAccessi", None, &[], "registro"),
];

/// Whether a route creates a record (201 with `Location`), rather than acting on one (200).
pub fn creates(route: &Route) -> bool {
    route.verb == Verb::Post && route.rpc.rsplit('.').next().is_some_and(|m| m.starts_with("Create"))
}
