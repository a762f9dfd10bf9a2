/**
 * Renders the server's run progress as cancellable notifications. The language client's own
 * progress part shows `$/progress` only in the status bar, without a cancel button; this feature
 * registers after it and takes over `window/workDoneProgress/create`.
 */

import { ProgressLocation, window, type CancellationToken, type Disposable, type Progress } from 'vscode';
import {
    WorkDoneProgress,
    WorkDoneProgressCancelNotification,
    WorkDoneProgressCreateRequest,
    type BaseLanguageClient,
    type ClientCapabilities,
    type FeatureState,
    type ProgressToken,
    type StaticFeature,
    type WorkDoneProgressBegin,
    type WorkDoneProgressReport,
} from 'vscode-languageclient/node';

class NotificationProgress {
    private listener: Disposable | undefined;
    private progress: Progress<{ message?: string; increment?: number }> | undefined;
    private cancelListener: Disposable | undefined;
    private finish: (() => void) | undefined;
    private reported = 0;
    private ended = false;

    constructor(
        private readonly client: BaseLanguageClient,
        private readonly token: ProgressToken,
        private readonly onDone: (part: NotificationProgress) => void,
    ) {
        this.listener = client.onProgress(WorkDoneProgress.type, token, (value) => {
            switch (value.kind) {
                case 'begin':
                    this.begin(value);
                    break;
                case 'report':
                    this.report(value);
                    break;
                case 'end':
                    this.done();
                    break;
            }
        });
    }

    private begin(params: WorkDoneProgressBegin): void {
        if (this.ended) {
            return;
        }
        void window.withProgress(
            { location: ProgressLocation.Notification, title: params.title, cancellable: params.cancellable ?? false },
            (progress, cancellation: CancellationToken) => {
                if (this.ended) {
                    return Promise.resolve();
                }
                this.progress = progress;
                this.cancelListener = cancellation.onCancellationRequested(() => {
                    void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token: this.token });
                });
                this.report(params);
                return new Promise<void>((resolve) => {
                    this.finish = resolve;
                });
            },
        );
    }

    private report(params: WorkDoneProgressReport | WorkDoneProgressBegin): void {
        if (!this.progress) {
            return;
        }
        let increment: number | undefined;
        if (typeof params.percentage === 'number') {
            const percentage = Math.max(0, Math.min(params.percentage, 100));
            increment = Math.max(0, percentage - this.reported);
            this.reported += increment;
        }
        this.progress.report({ message: params.message, increment });
    }

    done(): void {
        this.ended = true;
        this.listener?.dispose();
        this.cancelListener?.dispose();
        this.listener = this.cancelListener = undefined;
        this.progress = undefined;
        this.finish?.();
        this.finish = undefined;
        this.onDone(this);
    }
}

export class NotificationProgressFeature implements StaticFeature {
    private readonly parts = new Set<NotificationProgress>();

    constructor(private readonly client: BaseLanguageClient) {}

    fillClientCapabilities(capabilities: ClientCapabilities): void {
        capabilities.window = { ...capabilities.window, workDoneProgress: true };
    }

    initialize(): void {
        this.client.onRequest(WorkDoneProgressCreateRequest.type, (params) => {
            this.parts.add(new NotificationProgress(this.client, params.token, (part) => this.parts.delete(part)));
        });
    }

    getState(): FeatureState {
        return { kind: 'static' };
    }

    clear(): void {
        for (const part of [...this.parts]) {
            part.done();
        }
        this.parts.clear();
    }
}
