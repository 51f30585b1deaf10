import { DroverError, SCHEDULE_NAME_PATTERN, isCalendarDate } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { CalendarSchema, errorResponses } from '../schemas.js';
import { throwProblems } from './jobs.js';

const NameParams = Type.Object({ name: Type.String({ pattern: SCHEDULE_NAME_PATTERN, description: 'Letters, digits, `_ . -`, up to 64.' }) }, { additionalProperties: false });
const DatesBody = Type.Object(
  { dates: Type.Array(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }), { maxItems: 10_000, description: 'Dates (YYYY-MM-DD): a schedule referencing the calendar does not fire on them, in its own time zone.' }) },
  { additionalProperties: false },
);
const errors = errorResponses(400, 401, 403, 404, 429, 503);
type Named = { Params: { name: string } };

/**
 * Calendars: named sets of dates that schedules skip (`calendar: "holidays"`). Global objects, as operator variables
 * are: admin tokens write them, and only admin tokens read them (a restricted token sees no other queue's data).
 */
export function calendarRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const config = { scope: 'admin', queues: 'global' } as const;
  const tags = ['schedules'];

  app.put<Named & { Body: { dates: string[] } }>(
    '/v1/calendars/:name',
    { config, schema: { operationId: 'putCalendar', tags, summary: 'Create or replace a calendar: the dates schedules referencing it do not fire on', params: NameParams, body: DatesBody, response: { 200: CalendarSchema, ...errors } } },
    async (request) => {
      const bad = request.body.dates.flatMap((d, i) => (isCalendarDate(d) ? [] : [{ field: `dates/${i}`, message: `${d} is not a date` }]));
      throwProblems(bad, 'body');
      return ctx.schedules.putCalendar(request.params.name, request.body.dates);
    },
  );

  app.get(
    '/v1/calendars',
    { config, schema: { operationId: 'listCalendars', tags, summary: 'Every calendar with its dates', response: { 200: Type.Object({ items: Type.Array(CalendarSchema) }), ...errors } } },
    async () => ({ items: [...(await ctx.schedules.calendars()).values()] }),
  );

  app.get<Named>(
    '/v1/calendars/:name',
    { config, schema: { operationId: 'getCalendar', tags, summary: 'A calendar with its dates', params: NameParams, response: { 200: CalendarSchema, ...errors } } },
    async (request) => {
      const c = (await ctx.schedules.calendars()).get(request.params.name);
      if (!c) throw new DroverError('NOT_FOUND', `no calendar ${request.params.name}`);
      return c;
    },
  );

  app.delete<Named>(
    '/v1/calendars/:name',
    { config, schema: { operationId: 'deleteCalendar', tags, summary: 'Delete a calendar: schedules referencing it fire on every date again', params: NameParams, response: { 200: Type.Object({ deleted: Type.String() }), ...errors } } },
    async (request) => {
      if (!(await ctx.schedules.deleteCalendar(request.params.name))) throw new DroverError('NOT_FOUND', `no calendar ${request.params.name}`);
      return { deleted: request.params.name };
    },
  );
}
