/** The API key, kept in SecretStorage only: never in a settings file, never in a log. */

import type { Disposable, ExtensionContext } from 'vscode';
import { API_KEY_SECRET } from './constants';
import { setLogSecrets } from './logging';

export class ApiKeyStore {
    constructor(private readonly context: ExtensionContext) {}

    async get(): Promise<string | undefined> {
        const key = await this.context.secrets.get(API_KEY_SECRET);
        setLogSecrets([key]);
        return key || undefined;
    }

    async set(key: string | undefined): Promise<void> {
        if (key) {
            setLogSecrets([key]);
            await this.context.secrets.store(API_KEY_SECRET, key);
        } else {
            await this.context.secrets.delete(API_KEY_SECRET);
        }
    }

    onDidChange(listener: () => void): Disposable {
        return this.context.secrets.onDidChange((event) => {
            if (event.key === API_KEY_SECRET) {
                listener();
            }
        });
    }
}
