/** `agentls.databaseUrl` as the client passes it on: never with a password in it (docs/team.md). */

/**
 * `agentls.databaseUrl`, refused when it holds a password, as the server refuses it from any
 * settings file (core/stores/postgres.py): user settings get synced, shared and shown, and libpq
 * reads PGPASSWORD or ~/.pgpass itself. The message never repeats the URL (it holds the password).
 */
export function databaseUrl(url: string | null, problems: string[]): string | null {
    if (url !== null && hasPassword(url)) {
        problems.push(
            'agentls.databaseUrl holds a password: keep the password in PGPASSWORD or ~/.pgpass and give the URL without it; ignoring agentls.databaseUrl.',
        );
        return null;
    }
    return url;
}

/** A password in a libpq URL (`postgresql://user:secret@host`, `?password=`) or key=value string. */
export function hasPassword(url: string): boolean {
    const uri = /^postgres(?:ql)?:\/\/([^/?#]*)(.*)$/i.exec(url.trim());
    if (uri) {
        const at = uri[1].lastIndexOf('@');
        const userinfo = at >= 0 ? uri[1].slice(0, at) : '';
        return /:./.test(userinfo) || /[?&]password=[^&]/i.test(uri[2]);
    }
    return /(?:^|\s)password\s*=\s*(?:'(?:[^'\\]|\\.)+'|[^\s'])/i.test(url);
}
