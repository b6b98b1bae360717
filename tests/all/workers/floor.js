// The floor of make bench's side-by-side table: the least any Worker does to answer GET
// /admin/users in workerd. With an Authorization header, whatever its value, one fetch of the users
// page with the secret key and its body passed on; without one, a 401 JSON answer. No credential
// is ever checked: a yardstick, never a server to deploy.
export default {
  async fetch(request, env) {
    if (!request.headers.has("authorization")) {
      return Response.json({ error: "missing_credentials", message: "no credential" }, { status: 401 });
    }
    const upstream = await fetch(`${env.WACHT_BACKEND_API_URL}/users?limit=20`, {
      headers: { authorization: `Bearer ${env.WACHT_API_KEY}`, accept: "application/json" },
    });
    return new Response(await upstream.arrayBuffer(), {
      status: upstream.status,
      headers: { "content-type": "application/json" },
    });
  },
};
