// The API's reference: Swagger UI (served from the swagger-ui-bundle-v2 package) over /openapi.json.
/* global SwaggerUIBundle */
SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", deepLinking: true });
