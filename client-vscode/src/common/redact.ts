/** Removes secrets from text before it reaches a log. */

export const redactedMarker = '«redacted»';

/**
 * Replaces every occurrence of each secret (at least 4 characters long) with a marker, also in its
 * JSON-escaped form, since protocol traces print messages as JSON.
 */
export function redact(text: string, secrets: Iterable<string | undefined>): string {
    let result = text;
    for (const secret of secrets) {
        if (!secret || secret.length < 4) {
            continue;
        }
        for (const form of new Set([secret, JSON.stringify(secret).slice(1, -1)])) {
            if (result.includes(form)) {
                result = result.split(form).join(redactedMarker);
            }
        }
    }
    return result;
}
