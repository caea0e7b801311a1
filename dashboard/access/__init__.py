"""Who may do what: sign-in (local accounts and OIDC) and the viewer and operator roles."""
