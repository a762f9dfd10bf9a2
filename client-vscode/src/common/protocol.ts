/** The agentls wire contract (docs/protocol.md) as TypeScript types; no runtime dependencies. */

export const ServerCommand = {
    delegate: 'agentls.delegate',
    delegateParallel: 'agentls.delegateParallel',
    createAgent: 'agentls.createAgent',
    cancel: 'agentls.cancel',
    listAgents: 'agentls.listAgents',
    budget: 'agentls.budget',
    audit: 'agentls.audit',
} as const;

export const ServerNotification = {
    event: 'agentls/event',
    output: 'agentls/output',
    budget: 'agentls/budget',
} as const;

export interface Position {
    line: number;
    character: number;
}

export interface Range {
    start: Position;
    end: Position;
}

export interface Usage {
    inputTokens: number;
    cachedInputTokens: number;
    outputTokens: number;
    reasoningTokens: number;
    total: number;
    estimated: boolean;
}

export type RunStatus = 'finished' | 'failed' | 'cancelled' | 'budget_exceeded';

export interface RunEdit {
    uri: string;
    range: Range;
    newText: string;
}

export interface RunResult {
    runId: string;
    agent: string;
    status: RunStatus;
    text: string;
    edits: RunEdit[];
    usage: Usage;
    durationMs: number;
    error?: string | null;
    /** What the user should know that did not stop the run (e.g. a provider's overshoot). */
    warnings?: string[];
}

export interface ParallelResult {
    results: RunResult[];
    wallMs: number;
    usage: Usage;
}

export interface CreateAgentResult {
    definition: Record<string, unknown> & { name: string; description?: string };
    result: RunResult;
    savedTo?: string | null;
}

export interface AgentInfo {
    name: string;
    description: string;
    /** builtin, user, workspace, claude or generated. */
    source: string;
    path?: string | null;
    mode?: string;
    codeAction?: string | null;
}

export interface AgentBudget {
    used: number;
    limit: number | null;
    remaining: number | null;
}

export type BudgetPeriod = 'day' | 'week' | 'month';

/** A user's, a period's or a dollar limit with its current window (amounts in tokens or dollars). */
export interface BudgetLimit {
    scope: string;
    appliesTo: 'total' | 'agent' | 'user';
    /** The agent's or the user's. */
    name: string | null;
    unit: 'tokens' | 'usd';
    period: BudgetPeriod | null;
    /** The current UTC window: `2026-12-07`, `2026-W49`, `2026-12`. */
    window: string | null;
    limit: number;
    used: number;
    reserved: number;
    remaining: number;
}

export interface BudgetSnapshot {
    /** Whose calls the server makes: that user's limits bind them. */
    user?: string | null;
    used: number;
    limit: number | null;
    remaining: number | null;
    reserved?: number;
    agents: Record<string, AgentBudget>;
    limits?: BudgetLimit[];
}

/** `agentls.budget`'s argument: `limit` as `agentls budget set` takes it ('2M', '$50', 'none'). */
export interface BudgetArgs {
    action: 'get' | 'set' | 'reset';
    limit?: number | string | null;
    per?: BudgetPeriod;
    agent?: string;
    user?: string;
}

export type EventKind =
    | 'started'
    | 'model_call'
    | 'tool_call'
    | 'edit_proposed'
    | 'edit_applied'
    | 'edit_rejected'
    | 'output'
    | 'finished'
    | 'failed'
    | 'cancelled'
    | 'budget_exceeded'
    | 'interrupted';

/** Kinds that close a run; they carry the run's total usage. */
export const closingKinds: ReadonlySet<string> = new Set([
    'finished',
    'failed',
    'cancelled',
    'budget_exceeded',
    'interrupted',
]);

export interface AuditEvent {
    eventId: string;
    time: string;
    runId: string;
    parentRunId?: string | null;
    depth?: number;
    agent: string;
    goal?: string | null;
    /** An EventKind; other strings may come from newer servers. */
    kind: string;
    status?: string | null;
    usage?: Partial<Usage> | null;
    durationMs?: number | null;
    artifacts?: unknown;
    error?: string | null;
    data?: Record<string, unknown> | null;
}

export interface OutputDelta {
    runId: string;
    agent: string;
    delta: string;
}

export interface DelegateArgs {
    agent: string;
    goal: string;
    uri?: string;
    range?: Range;
    budget?: number;
}

/** A server on stdio (`command`, `args`, `env`) or over Streamable HTTP (`url`, `headers`). */
export type McpServerConfig =
    | { command: string; args?: string[]; env?: Record<string, string> }
    | { url: string; headers?: Record<string, string> };

/** The `settings` object of initializationOptions; also the `agentls` configuration section (minus apiKey). */
export interface ServerSettings {
    model: string | null;
    baseUrl: string | null;
    budget: {
        total: number | null;
        perRun: number | null;
        perAgent: Record<string, number>;
        waitSeconds: number;
        minOutputTokens: number;
    };
    maxParallel: number;
    maxDepth: number;
    maxOutputTokens: number;
    mcpServers: Record<string, McpServerConfig>;
    mcpCallTimeout: number;
    agentFolders: string[];
    allowGeneratedEditTools: boolean;
    audit: { retentionDays: number | null };
    /** `agentls.telemetry.*`: see docs/telemetry.md. */
    telemetry: { otlpEndpoint: string | null; captureContent: boolean };
    runCommand: RunCommandSettings;
    confirmEdits: boolean;
    /** VS Code's workspace trust, sent as the server's `trustWorkspace` setting. */
    trustWorkspace: boolean | null;
    /** `agentls.prices`: dollars per million tokens of models genai-prices does not know. */
    prices: Record<string, ModelPrice>;
    /** `agentls.databaseUrl`: a team's PostgreSQL database, never with a password (docs/team.md). */
    databaseUrl: string | null;
}

export interface ModelPrice {
    input: number;
    cachedInput: number | null;
    output: number;
}

/** `agentls.runCommand.*`: see docs/security.md. */
export interface RunCommandSettings {
    enabled: boolean;
    allow: string[];
    timeoutSeconds: number;
    passEnv: string[];
}

export interface InitializationOptions {
    settings: ServerSettings & { apiKey: string | null };
    workspaceTrusted: boolean;
    /** The settings sent hold a workspace's values only where the user allowed them. */
    scopedConfiguration: true;
}
